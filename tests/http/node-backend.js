// A strict HTTP/1.1 backend (Node's own parser, llhttp, in its default
// strict mode) for lb's smuggling tests: node-backend.js PORT LOGFILE.
// Each request it parses appends one line to LOGFILE:
//   METHOD URL cl=<content-length or -> te=<transfer-encoding or -> body=<bytes>
// and is answered 200 "ok". Prints "listening" once it listens.
'use strict';
const http = require('http');
const fs = require('fs');
const port = Number(process.argv[2]);
const log = process.argv[3];
const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d) => { n += d.length; });
    req.on('end', () => {
        const cl = req.headers['content-length'] || '-';
        const te = req.headers['transfer-encoding'] || '-';
        fs.appendFileSync(log, `${req.method} ${req.url} cl=${cl} te=${te} body=${n}\n`);
        res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': '3'});
        res.end('ok\n');
    });
});
server.on('clientError', (err, socket) => {
    fs.appendFileSync(log, `clientError ${err.code}\n`);
    socket.destroy();
});
server.listen(port, '127.0.0.1', () => { console.log('listening'); });

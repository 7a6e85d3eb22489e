// An HTTPS/1.1 keep-alive backend (Node's https module) for lb's TLS to
// backends tests: https-backend.js PORT CERT KEY LOGFILE [IDLE_MS].
// Each TLS connection it accepts appends "conn N" to LOGFILE (N counts
// from 1), each request "req N.M METHOD URL" (M counts the connection's
// requests from 1), and each request is answered 200 with the body
// "resp N.M URL\n", so a client can tell which connection served it.
// IDLE_MS: how long an idle connection is kept (Node's keepAliveTimeout;
// default 60000). Prints "listening" once it listens.
'use strict';
const https = require('https');
const fs = require('fs');
const port = Number(process.argv[2]);
const log = process.argv[5];
const idle = process.argv[6] ? Number(process.argv[6]) : 60000;
let conns = 0;
const server = https.createServer({
    cert: fs.readFileSync(process.argv[3]),
    key: fs.readFileSync(process.argv[4]),
}, (req, res) => {
    const sock = req.socket;
    sock.lbReqs = (sock.lbReqs || 0) + 1;
    const id = `${sock.lbConn}.${sock.lbReqs}`;
    req.resume();
    req.on('end', () => {
        fs.appendFileSync(log, `req ${id} ${req.method} ${req.url}\n`);
        const body = `resp ${id} ${req.url}\n`;
        res.writeHead(200, {'Content-Type': 'text/plain',
                            'Content-Length': String(Buffer.byteLength(body))});
        res.end(body);
    });
});
server.keepAliveTimeout = idle;
server.on('secureConnection', (sock) => {
    sock.lbConn = ++conns;
    fs.appendFileSync(log, `conn ${sock.lbConn}\n`);
    sock.on('close', () => { fs.appendFileSync(log, `closed ${sock.lbConn}\n`); });
});
server.on('tlsClientError', (err) => {
    fs.appendFileSync(log, `tlsClientError ${err.code}\n`);
});
server.listen(port, '127.0.0.1', () => { console.log('listening'); });

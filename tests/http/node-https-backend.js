// An HTTPS backend (Node's https module) for the https health check tests:
// node-https-backend.js PORT CERT KEY STATUS LOGFILE. Each request appends
// one line to LOGFILE:
//   METHOD URL host=<Host header> sni=<server name the client sent, or ->
// and is answered STATUS with the body "ok\n". Prints "listening" once it
// listens on 127.0.0.1:PORT.
'use strict';
const https = require('https');
const fs = require('fs');
const [port, cert, key, status, log] = process.argv.slice(2);
const opts = {cert: fs.readFileSync(cert), key: fs.readFileSync(key)};
const server = https.createServer(opts, (req, res) => {
    const sni = req.socket.servername || '-';
    fs.appendFileSync(log, `${req.method} ${req.url} host=${req.headers.host} sni=${sni}\n`);
    res.writeHead(Number(status), {'Content-Type': 'text/plain', 'Content-Length': '3'});
    res.end('ok\n');
});
server.listen(Number(port), '127.0.0.1', () => { console.log('listening'); });

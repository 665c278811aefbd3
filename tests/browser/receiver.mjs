// The test's webhook receiver: answers every request 200 with the body of EMQX's Flask
// example, and records what it got. GET /__received lists the recorded requests (JSON);
// POST /__refuse with body `on` makes it answer 400 (a receiver refusing events), `off` 200.
// Usage: PORT=5000 node receiver.mjs

import http from 'node:http';

const received = [];
let refusing = false;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/__received') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(received));
      return;
    }
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'POST' && req.url === '/__refuse') {
      refusing = body.trim() === 'on';
      res.writeHead(204);
      res.end();
      return;
    }
    received.push({ method: req.method, url: req.url, headers: req.headers, body });
    if (refusing) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ result: 'refused', message: 'unknown device' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ result: 'ok', message: 'success' }));
  });
});

const port = Number(process.env.PORT ?? 5000);
server.listen(port, '127.0.0.1', () => console.log(`receiver listening on 127.0.0.1:${port}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));

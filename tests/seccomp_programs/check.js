// Node.js: libuv's event loop (epoll, threadpool), child processes,
// worker threads, sockets, timers, crypto, zlib.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const zlib = require('zlib');
const crypto = require('crypto');
const { execFileSync, spawn } = require('child_process');
const { Worker } = require('worker_threads');

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-'));
  await fs.promises.writeFile(path.join(dir, 'f'), crypto.randomBytes(4096));
  const data = await fs.promises.readFile(path.join(dir, 'f'));
  assert.strictEqual(data.length, 4096);
  await fs.promises.copyFile(path.join(dir, 'f'), path.join(dir, 'g'));
  const st = await fs.promises.stat(path.join(dir, 'g'));
  assert.strictEqual(st.size, 4096);
  fs.rmSync(dir, { recursive: true });

  assert.strictEqual(execFileSync('echo', ['child']).toString(), 'child\n');
  await new Promise((res, rej) => spawn('true').on('exit', (c) => (c === 0 ? res() : rej(c))));

  const w = new Worker('require("worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
  assert.strictEqual(await new Promise((res) => w.on('message', res)), 42);

  const server = http.createServer((req, res) => res.end('served'));
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const body = await new Promise((res, rej) => {
    http.get({ host: '127.0.0.1', port: server.address().port }, (r) => {
      let b = '';
      r.on('data', (c) => (b += c));
      r.on('end', () => res(b));
    }).on('error', rej);
  });
  assert.strictEqual(body, 'served');
  server.close();

  assert.strictEqual(zlib.gunzipSync(zlib.gzipSync('zz')).toString(), 'zz');
  await new Promise((res) => setTimeout(res, 20));
  crypto.createHash('sha256').update('x').digest('hex');
  os.cpus();
  console.log('node ok');
}
main().catch((e) => { console.error(e); process.exit(1); });

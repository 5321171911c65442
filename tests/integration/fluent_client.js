// Ships N events to vigild with @fluent-org/logger (a Forward client we did not write)
// over TLS with a client certificate, waiting for each acknowledgement.
// usage: node fluent_client.js PORT CA CERT KEY COUNT MODE RUN_ID
"use strict";
const fs = require("fs");
const { FluentClient, EventTime } = require("@fluent-org/logger");

let done = false;
// Promises that never settle (the server refused us) must not look like success.
process.on("beforeExit", () => {
  if (!done) {
    console.error("fluent client: ended without every acknowledgement (refused?)");
    process.exit(3);
  }
});

async function main() {
  const [port, ca, cert, key, count, mode, runId] = process.argv.slice(2);
  // Sanitizer builds on a busy machine are slow: the harness stretches this.
  const timeoutMs = Number(process.env.FLUENT_TIMEOUT_MS || 20000);
  const client = new FluentClient("vigil.it", {
    eventMode: mode,
    ack: { ackTimeout: timeoutMs },
    socket: {
      host: "127.0.0.1",
      port: Number(port),
      timeout: timeoutMs,
      disableReconnect: true,
      tls: {
        ca: fs.readFileSync(ca),
        cert: fs.readFileSync(cert),
        key: fs.readFileSync(key),
        // The name vigild's certificate must carry (a Fluent Bit config's tls.vhost).
        servername: process.env.FLUENT_SERVERNAME || "localhost",
      },
    },
    flushInterval: 10,
    // Forward v1 shared-key handshake (HELO/PING/PONG) when SHARED_KEY is set.
    security: process.env.SHARED_KEY
      ? { clientHostname: "fluent-it-client", sharedKey: process.env.SHARED_KEY }
      : undefined,
  });
  client.socketOn("error", (err) => console.error("fluent client error:", err.message));
  await client.connect();
  const pending = [];
  for (let i = 0; i < Number(count); i++) {
    pending.push(client.emit("fluent", {
      message: `fluent-logger event ${i}`,
      run_id: runId,
      seq_no: i,
      host: "node-fluent",
      user: "svc-fluent",
    }, EventTime.now()));
  }
  await Promise.all(pending);
  await client.disconnect();
  done = true;
  console.log(`acknowledged ${pending.length}`);
}

main().catch((err) => {
  console.error("fluent client failed:", err && err.stack ? err.stack : err);
  process.exit(1);
});

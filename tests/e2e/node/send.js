// send.js — sends one message with nodemailer, as a customer's Node app
// would: STARTTLS required, AUTH with the given method, user and API key.
// Usage: node send.js PORT METHOD USER KEY; prints the server's reply.
"use strict";
const nodemailer = require("nodemailer");

const [port, method, user, pass] = process.argv.slice(2);
const transport = nodemailer.createTransport({
  host: "127.0.0.1",
  port: Number(port),
  secure: false,
  requireTLS: true,
  tls: { rejectUnauthorized: false },
  authMethod: method,
  auth: { user, pass },
});
transport
  .sendMail({
    from: "alice@example.org",
    to: "bob@example.net",
    subject: "nodemailer e2e",
    text: "sent with nodemailer",
  })
  .then((info) => console.log(info.response))
  .catch((err) => {
    console.log("error: " + err.message);
    process.exitCode = 1;
  });

// Cold-start anchor of `files-bench cold-start`: a Node.js hello world as a Lambda custom runtime.
// The same loop as AWS's own Node.js runtime, without its extras: read events from the Runtime API
// (AWS_LAMBDA_RUNTIME_API), call the handler, post the result. Node's standard library only.
import http from "node:http";

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const handler = async (_event) => ({ statusCode: 200, body: "hello" });

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

for (;;) {
  const next = await call("GET", "/2018-06-01/runtime/invocation/next");
  const requestId = next.headers["lambda-runtime-aws-request-id"];
  const result = await handler(JSON.parse(next.body));
  await call("POST", `/2018-06-01/runtime/invocation/${requestId}/response`, JSON.stringify(result));
}

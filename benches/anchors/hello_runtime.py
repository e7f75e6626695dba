"""Cold-start anchor of `files-bench cold-start`: a Python hello world as a Lambda custom runtime.

The same loop as AWS's own Python runtime, without its extras: read events from the Runtime API
(AWS_LAMBDA_RUNTIME_API), call the handler, post the result. Standard library only.
"""
import http.client
import json
import os

API = os.environ["AWS_LAMBDA_RUNTIME_API"]


def handler(event, context):
    return {"statusCode": 200, "body": "hello"}


def main():
    connection = http.client.HTTPConnection(API)
    while True:
        connection.request("GET", "/2018-06-01/runtime/invocation/next")
        response = connection.getresponse()
        event = json.loads(response.read())
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        result = json.dumps(handler(event, None))
        connection.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", result)
        connection.getresponse().read()


if __name__ == "__main__":
    main()

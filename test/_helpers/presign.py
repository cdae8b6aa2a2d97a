"""Presigns one S3 request with botocore, the signer Debian's awscli ships, as an independent check of
Tessera's query-string signing. Reads JSON from argv[1]: method, url (without the signature's parameters),
headers, date (YYYYMMDDTHHMMSSZ), region, expires, accessKeyId, secretAccessKey, sessionToken; prints the
presigned URL. Run with /usr/bin/python3, where Debian's awscli lives."""

import datetime
import json
import sys
import types

import awscli  # noqa: F401  (puts awscli's bundled botocore on the path)
import botocore.auth
import botocore.awsrequest
import botocore.credentials

args = json.loads(sys.argv[1])
fixed = datetime.datetime.strptime(args["date"], "%Y%m%dT%H%M%SZ")


class FixedDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return fixed


# botocore.auth reads the clock as datetime.datetime.utcnow(): give it the request's own time.
botocore.auth.datetime = types.SimpleNamespace(datetime=FixedDatetime)
credentials = botocore.credentials.Credentials(
    args["accessKeyId"], args["secretAccessKey"], args.get("sessionToken")
)
auth = botocore.auth.S3SigV4QueryAuth(credentials, "s3", args["region"], expires=args["expires"])
request = botocore.awsrequest.AWSRequest(method=args["method"], url=args["url"], headers=args["headers"])
auth.add_auth(request)
print(request.url)

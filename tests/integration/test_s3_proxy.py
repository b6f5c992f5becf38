"""The S3 test server's SigV4-verifying proxy (fixtures/s3_proxy.py): its signer reproduces AWS's
published Signature Version 4 test vectors (data/sigv4_test_vectors.json names their source), and
in front of s3rver it refuses a wrong signature, an unknown key and a body that does not match its
x-amz-content-sha256 with S3's errors, while passing signed requests through."""

import hashlib
import json
from pathlib import Path

import pytest

from fixtures import s3_proxy
from fixtures.s3 import S3Server, s3rver_available

VECTORS = json.loads((Path(__file__).parent / "data" / "sigv4_test_vectors.json").read_text())


@pytest.mark.parametrize("v", VECTORS["vectors"], ids=lambda v: v["name"])
def test_signer_matches_aws_test_suite(v):
    suite = VECTORS["suite"]
    headers = [("Host", suite["host"])] + [tuple(h) for h in v["headers"]] + [
        ("X-Amz-Date", suite["amz_date"])]
    auth = s3_proxy.sign(v["method"], v["path"], v["query"], headers, suite["access_key"],
                         suite["secret_key"], suite["region"], suite["service"],
                         suite["amz_date"], s3_proxy.EMPTY_SHA256)
    assert auth == v["authorization"]
    if "string_to_sign_hash" in v:
        signed = sorted({n.lower() for n, _ in headers})
        creq = s3_proxy.canonical_request(v["method"], v["path"], v["query"], headers, signed,
                                          s3_proxy.EMPTY_SHA256)
        assert hashlib.sha256(creq.encode()).hexdigest() == v["string_to_sign_hash"]


def test_signer_matches_s3_get_object_example():
    v = VECTORS["s3_get_object"]
    headers = [tuple(h) for h in v["headers"]]
    signed = sorted({n.lower() for n, _ in headers})
    creq = s3_proxy.canonical_request(v["method"], v["path"], v["query"], headers, signed,
                                      v["payload_hash"])
    assert hashlib.sha256(creq.encode()).hexdigest() == v["string_to_sign_hash"]
    scope = f"{v['amz_date'][:8]}/{v['region']}/{v['service']}/aws4_request"
    sts = s3_proxy.string_to_sign(v["amz_date"], scope, creq)
    assert s3_proxy.signature(v["secret_key"], v["amz_date"][:8], v["region"], v["service"],
                              sts) == v["signature"]


@pytest.mark.skipif(not s3rver_available(), reason="s3rver not installed (scripts/install-deps.sh)")
def test_proxy_refuses_bad_requests(tmp_path, procs):
    srv = S3Server(tmp_path / "s3", procs)
    srv.start()
    good = srv.client()
    good.put("dir/key one", b"payload")
    assert good.get("dir/key one") == b"payload"
    assert good.list("dir/") == ["dir/key one"]

    wrong_secret = s3_proxy.S3Client(srv.endpoint, srv.bucket, srv.access_key, "not-the-secret")
    status, _, body = wrong_secret.request("PUT", "dir/other", body=b"x")
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    unknown = s3_proxy.S3Client(srv.endpoint, srv.bucket, "AKIAUNKNOWN", srv.secret_key)
    status, _, body = unknown.request("GET", "dir/key one")
    assert status == 403 and b"<Code>InvalidAccessKeyId</Code>" in body
    # a signed hash of other bytes than the body sent
    status, _, body = good.request("PUT", "dir/other", body=b"x",
                                   headers={"x-amz-content-sha256": s3_proxy.EMPTY_SHA256})
    assert status in (400, 403)
    assert good.get("dir/other") is None  # nothing refused was stored
    assert good.list("dir/") == ["dir/key one"]

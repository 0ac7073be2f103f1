"""The built-in S3 endpoint's access keys, scopes and signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import botocore.auth
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from cloudtune.services.storage import sigv4
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.api.routes.test_jobs import assert_envelope

T = TypeVar("T")
MiB = 1024 * 1024


def endpoint(client: httpx.AsyncClient) -> str:
    return f"{client.base_url}/api/cloud/storage"


def s3_client(client: httpx.AsyncClient, made: dict[str, Any]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint(client),
        aws_access_key_id=made["access_key_id"],
        aws_secret_access_key=made["secret_access_key"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1},
        ),
    )


async def off_loop(fn: Callable[[], T]) -> T:
    """boto3 blocks; the server runs on this test's event loop."""
    return await asyncio.to_thread(fn)


async def make_key(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/cloud/storage/credentials", json={"bucket": "outputs", **body}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


class TestCredentials:
    async def test_made_listed_revoked_and_the_secret_shown_once(
        self, client: httpx.AsyncClient
    ) -> None:
        made = await make_key(client, expires_days=2)
        assert made["access_key_id"].startswith("CTAK")
        assert made["prefix"] == "" and made["access"] == "read-write"
        assert made["endpoint_url"].endswith("/api/cloud/storage")
        expires = datetime.fromisoformat(made["expires_at"])
        assert timedelta(days=1) < expires - datetime.now(UTC) <= timedelta(days=2)
        s3 = s3_client(client, made)
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="k.txt", Body=b"hi"))

        listed = (await client.get("/api/cloud/storage/credentials/")).json()["credentials"]
        assert [c["access_key_id"] for c in listed] == [made["access_key_id"]]
        assert made["secret_access_key"] not in str(listed)

        revoked = await client.delete(f"/api/cloud/storage/credentials/{made['access_key_id']}")
        assert revoked.status_code == 200
        with pytest.raises(ClientError) as refused:
            await off_loop(lambda: s3.get_object(Bucket="outputs", Key="k.txt"))
        assert error_code(refused) == "AccessDenied"
        missing = await client.delete("/api/cloud/storage/credentials/CTAKNOPE")
        assert_envelope(missing, 404, "credential_not_found")

    async def test_bodies_are_checked(self, client: httpx.AsyncClient) -> None:
        url = "/api/cloud/storage/credentials"
        unknown = await client.post(url, json={"bucket": "outputs", "region": "eu"})
        assert_envelope(unknown, 400, "unsupported_field")
        assert_envelope(await client.post(url, json={"bucket": "Not_A_Bucket"}), 400)
        assert_envelope(await client.post(url, json={"bucket": "outputs", "access": "all"}), 400)
        assert_envelope(
            await client.post(url, json={"bucket": "outputs", "prefix": "../up/"}), 400
        )
        assert_envelope(await client.post(url, json={"bucket": "outputs", "expires_days": 0}), 422)

    async def test_non_admins_are_confined_to_their_own_prefix(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        rita = await add_user(client, admin, "rita", "researcher")
        vic = await add_user(client, admin, "vic", "viewer")
        assert_envelope(
            await client.post("/api/cloud/storage/credentials", json={"bucket": "outputs"}), 401
        )

        hers = await make_key(client, bearer(rita))
        assert hers["prefix"] == "rita/" and hers["access"] == "read-write"
        deeper = await make_key(client, bearer(rita), prefix="rita/runs/")
        assert deeper["prefix"] == "rita/runs/"
        other = await client.post(
            "/api/cloud/storage/credentials",
            json={"bucket": "outputs", "prefix": "vic/"},
            headers=bearer(rita),
        )
        assert_envelope(other, 403)
        his = await make_key(client, bearer(vic))
        assert his["prefix"] == "vic/" and his["access"] == "read"
        assert_envelope(
            await client.post(
                "/api/cloud/storage/credentials",
                json={"bucket": "outputs", "access": "read-write"},
                headers=bearer(vic),
            ),
            403,
        )
        admins = await make_key(client, bearer(admin))
        assert admins["prefix"] == ""

        s3 = s3_client(client, hers)
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="rita/a.txt", Body=b"a"))
        with pytest.raises(ClientError) as outside:
            await off_loop(lambda: s3.put_object(Bucket="outputs", Key="vic/a.txt", Body=b"a"))
        assert error_code(outside) == "AccessDenied"
        read_only = s3_client(client, his)
        with pytest.raises(ClientError) as writes:
            await off_loop(lambda: read_only.put_object(Bucket="outputs", Key="vic/a", Body=b""))
        assert error_code(writes) == "AccessDenied"

        mine = (await client.get("/api/cloud/storage/credentials", headers=bearer(rita))).json()
        assert {c["access_key_id"] for c in mine["credentials"]} == {
            hers["access_key_id"],
            deeper["access_key_id"],
        }
        everyone = (
            await client.get("/api/cloud/storage/credentials", headers=bearer(admin))
        ).json()
        assert len(everyone["credentials"]) == 4
        theirs = await client.delete(
            f"/api/cloud/storage/credentials/{admins['access_key_id']}", headers=bearer(rita)
        )
        assert_envelope(theirs, 404)

        # API callers read (and, with storage.write, write) under their own prefix only.
        own = await client.get(f"{endpoint(client)}/outputs/rita/a.txt", headers=bearer(rita))
        assert own.status_code == 200 and own.content == b"a"
        listed = await client.get(f"{endpoint(client)}/outputs", headers=bearer(rita))
        assert [o["Key"] for o in listed.json()["Contents"]] == ["rita/a.txt"]
        assert_envelope(
            await client.get(f"{endpoint(client)}/outputs/rita/a.txt", headers=bearer(vic)), 403
        )
        assert_envelope(await client.get(f"{endpoint(client)}/outputs/rita/a.txt"), 401)
        assert (
            await client.get(f"{endpoint(client)}/outputs/rita/a.txt", headers=bearer(admin))
        ).status_code == 200


class TestSignatures:
    async def test_a_clock_15_minutes_off_and_an_expired_presigned_url_are_refused(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        made = await make_key(client)
        s3 = s3_client(client, made)
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="k.txt", Body=b"hi"))
        past = datetime.now(UTC) - timedelta(minutes=16)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: past)
        with pytest.raises(ClientError) as skewed:
            await off_loop(lambda: s3.get_object(Bucket="outputs", Key="k.txt"))
        assert error_code(skewed) == "RequestTimeTooSkewed"
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "outputs", "Key": "k.txt"}, ExpiresIn=600
        )
        expired = await client.get(url)
        assert expired.status_code == 403 and b"<Code>AccessDenied</Code>" in expired.content
        monkeypatch.setattr(
            botocore.auth, "get_current_datetime", lambda: datetime.now(UTC) - timedelta(minutes=5)
        )
        fresh = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "outputs", "Key": "k.txt"}, ExpiresIn=600
        )
        assert (await client.get(fresh)).content == b"hi"

    async def test_a_signed_aws_chunked_upload_with_each_chunk_checked(
        self, client: httpx.AsyncClient
    ) -> None:
        made = await make_key(client)
        data = [b"x" * 70000, b"y" * 1000]

        def signed_body(forge: bool) -> tuple[dict[str, str], bytes]:
            url = f"{endpoint(client)}/outputs/chunked/file.bin"
            now = datetime.now(UTC)
            headers = {
                "host": client.base_url.netloc.decode(),
                "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
                "x-amz-content-sha256": sigv4.STREAMING_SIGNED,
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(sum(map(len, data))),
            }
            request = AWSRequest(method="PUT", url=url, headers=dict(headers))
            signer = S3SigV4Auth(
                Credentials(made["access_key_id"], made["secret_access_key"]), "s3", "us-east-1"
            )
            request.context["timestamp"] = headers["x-amz-date"]
            canonical = signer.canonical_request(request)
            seed = signer.signature(signer.string_to_sign(request, canonical), request)
            scope = f"{headers['x-amz-date'][:8]}/us-east-1/s3/aws4_request"
            headers["authorization"] = (
                f"AWS4-HMAC-SHA256 Credential={made['access_key_id']}/{scope}, "
                f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
                f"Signature={seed}"
            )
            claims = sigv4.SignedRequest(
                made["access_key_id"],
                headers["x-amz-date"],
                "us-east-1",
                (),
                seed,
                False,
                None,
                "",
            )
            key = sigv4.signing_key(made["secret_access_key"], claims)
            body, previous = b"", seed
            for chunk in [*data, b""]:
                to_sign = "\n".join(
                    [
                        "AWS4-HMAC-SHA256-PAYLOAD",
                        headers["x-amz-date"],
                        scope,
                        previous,
                        hashlib.sha256(b"").hexdigest(),
                        hashlib.sha256(chunk).hexdigest(),
                    ]
                )
                previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
                sent = chunk.replace(b"y", b"z") if forge and chunk else chunk
                body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
            return headers, body

        headers, body = signed_body(forge=False)
        url = f"{endpoint(client)}/outputs/chunked/file.bin"
        stored = await client.put(url, content=body, headers=headers)
        assert stored.status_code == 200, stored.text
        s3 = s3_client(client, made)
        got = await off_loop(
            lambda: s3.get_object(Bucket="outputs", Key="chunked/file.bin")["Body"].read()
        )
        assert got == b"".join(data)

        headers, body = signed_body(forge=True)
        forged = await client.put(
            url.replace("file.bin", "forged.bin"), content=body, headers=headers
        )
        assert forged.status_code == 403
        assert b"SignatureDoesNotMatch" in forged.content


class TestObjects:
    async def test_folder_keys_multipart_rules_and_limits(self, client: httpx.AsyncClient) -> None:
        made = await make_key(client)
        s3 = s3_client(client, made)
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="dir/", Body=b""))
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="dir/a.txt", Body=b"a"))
        listed = await off_loop(lambda: s3.list_objects_v2(Bucket="outputs"))
        assert [o["Key"] for o in listed["Contents"]] == ["dir/", "dir/a.txt"]
        marker = await off_loop(lambda: s3.head_object(Bucket="outputs", Key="dir/"))
        assert marker["ContentLength"] == 0

        upload = await off_loop(lambda: s3.create_multipart_upload(Bucket="outputs", Key="mp.bin"))
        upload_id = upload["UploadId"]
        etags = []
        for number, size in ((1, 1024), (2, 1024)):
            part = await off_loop(
                lambda n=number, s=size: s3.upload_part(
                    Bucket="outputs", Key="mp.bin", UploadId=upload_id, PartNumber=n, Body=b"p" * s
                )
            )
            etags.append({"PartNumber": number, "ETag": part["ETag"]})
        parts = await off_loop(
            lambda: s3.list_parts(Bucket="outputs", Key="mp.bin", UploadId=upload_id)
        )
        assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2]
        with pytest.raises(ClientError) as small:
            await off_loop(
                lambda: s3.complete_multipart_upload(
                    Bucket="outputs",
                    Key="mp.bin",
                    UploadId=upload_id,
                    MultipartUpload={"Parts": etags},
                )
            )
        assert error_code(small) == "EntityTooSmall"
        await off_loop(
            lambda: s3.abort_multipart_upload(Bucket="outputs", Key="mp.bin", UploadId=upload_id)
        )
        with pytest.raises(ClientError) as aborted:
            await off_loop(
                lambda: s3.list_parts(Bucket="outputs", Key="mp.bin", UploadId=upload_id)
            )
        assert error_code(aborted) == "NoSuchUpload"

        client.app.state.ctx.settings.storage_max_object_bytes = 1000  # type: ignore[attr-defined]
        with pytest.raises(ClientError) as large:
            await off_loop(lambda: s3.put_object(Bucket="outputs", Key="big", Body=b"b" * 1001))
        assert error_code(large) == "EntityTooLarge"
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="fits", Body=b"b" * 1000))

        odd = await client.get(f"{endpoint(client)}/outputs?acl")
        assert odd.status_code == 501


class TestUntrustedContent:
    async def test_an_object_is_served_as_a_sandboxed_download(
        self, client: httpx.AsyncClient
    ) -> None:
        # An uploaded HTML page on this origin would run with a signed-in admin's session.
        s3 = s3_client(client, await make_key(client))
        page = b"<script>fetch('/api/users', {method: 'POST'})</script>"
        await off_loop(
            lambda: s3.put_object(
                Bucket="outputs", Key="x/page.html", Body=page, ContentType="text/html"
            )
        )
        for method in ("GET", "HEAD"):
            served = await client.request(method, f"{endpoint(client)}/outputs/x/page.html")
            assert served.status_code == 200
            assert served.headers["content-security-policy"] == "sandbox"
            assert served.headers["x-content-type-options"] == "nosniff"
            assert served.headers["content-disposition"] == "attachment"
        got = await off_loop(lambda: s3.get_object(Bucket="outputs", Key="x/page.html"))
        assert got["ContentType"] == "text/html"
        assert await off_loop(got["Body"].read) == page


class TestListingPrefixes:
    async def test_a_prefix_that_climbs_out_of_the_grant_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        admin = await setup_admin(client)
        olga = await add_user(client, admin, "olga", "researcher")
        await add_user(client, admin, "bob", "researcher")
        admins = s3_client(client, await make_key(client, bearer(admin)))
        await off_loop(lambda: admins.put_object(Bucket="outputs", Key="bob/x.txt", Body=b"b"))
        hers = s3_client(client, await make_key(client, bearer(olga)))
        await off_loop(lambda: hers.put_object(Bucket="outputs", Key="olga/a.txt", Body=b"a"))
        for prefix in ("olga/../bob/", "olga/../../../../etc/shadow", "olga//x", "olga/.ct~meta/"):
            with pytest.raises(ClientError) as refused:
                await off_loop(
                    lambda p=prefix: hers.list_objects_v2(Bucket="outputs", Prefix=p, MaxKeys=0)
                )
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            listed = await client.get(
                f"{endpoint(client)}/outputs", params={"prefix": prefix}, headers=bearer(olga)
            )
            assert_envelope(listed, 400)
        with pytest.raises(ClientError) as after:
            await off_loop(
                lambda: hers.list_objects_v2(
                    Bucket="outputs", Prefix="olga/", StartAfter="olga/../bob/"
                )
            )
        assert error_code(after) == "InvalidArgument"
        # A trailing partial segment is an ordinary prefix.
        mine = await off_loop(lambda: hers.list_objects_v2(Bucket="outputs", Prefix="olga/a"))
        assert [o["Key"] for o in mine["Contents"]] == ["olga/a.txt"]


class TestKeysMadeWithNoUsers:
    async def test_stop_working_once_a_user_exists(self, client: httpx.AsyncClient) -> None:
        s3 = s3_client(client, await make_key(client))
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="early.txt", Body=b"e"))
        await setup_admin(client)
        with pytest.raises(ClientError) as refused:
            await off_loop(lambda: s3.get_object(Bucket="outputs", Key="early.txt"))
        assert error_code(refused) == "AccessDenied"
        with pytest.raises(ClientError):
            await off_loop(lambda: s3.put_object(Bucket="outputs", Key="olga/x", Body=b"x"))


class TestPartsWithinTheObjectLimit:
    async def test_a_part_over_the_object_limit_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        s3 = s3_client(client, await make_key(client))
        client.app.state.ctx.settings.storage_max_object_bytes = 2500  # type: ignore[attr-defined]
        upload_id = (
            await off_loop(lambda: s3.create_multipart_upload(Bucket="outputs", Key="mp.bin"))
        )["UploadId"]

        def part(number: int) -> Any:
            return s3.upload_part(
                Bucket="outputs", Key="mp.bin", UploadId=upload_id, PartNumber=number,
                Body=b"p" * 1000,
            )  # fmt: skip

        await off_loop(lambda: part(1))
        await off_loop(lambda: part(2))
        with pytest.raises(ClientError) as large:
            await off_loop(lambda: part(3))
        assert error_code(large) == "EntityTooLarge"
        await off_loop(lambda: part(2))  # sent again: it replaces its earlier self
        listed = await off_loop(
            lambda: s3.list_parts(Bucket="outputs", Key="mp.bin", UploadId=upload_id)
        )
        assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]


class TestSignedPayloadClaim:
    async def test_an_unsigned_content_sha256_header_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        made = await make_key(client)
        url = f"{endpoint(client)}/outputs/replayed.txt"
        headers = {
            "host": client.base_url.netloc.decode(),
            "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        }
        request = AWSRequest(method="PUT", url=url, headers=dict(headers))
        signer = S3SigV4Auth(
            Credentials(made["access_key_id"], made["secret_access_key"]), "s3", "us-east-1"
        )
        request.context["timestamp"] = headers["x-amz-date"]
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        scope = f"{headers['x-amz-date'][:8]}/us-east-1/s3/aws4_request"
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={made['access_key_id']}/{scope}, "
            f"SignedHeaders=host;x-amz-date, Signature={signature}"
        )
        headers["x-amz-content-sha256"] = sigv4.UNSIGNED
        sent = await client.put(url, content=b"another body", headers=headers)
        assert sent.status_code == 403 and b"<Code>AccessDenied</Code>" in sent.content
        s3 = s3_client(client, made)
        with pytest.raises(ClientError) as stored:
            await off_loop(lambda: s3.head_object(Bucket="outputs", Key="replayed.txt"))
        assert stored.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


class TestBadRequestsAre400:
    async def test_a_key_segment_longer_than_a_file_name_and_a_date_of_no_day(
        self, client: httpx.AsyncClient
    ) -> None:
        s3 = s3_client(client, await make_key(client))
        await off_loop(lambda: s3.put_object(Bucket="outputs", Key="ok.txt", Body=b"o"))
        long_key = "a/" + "x" * 300
        calls: list[Callable[[], Any]] = [
            lambda: s3.put_object(Bucket="outputs", Key=long_key, Body=b"x"),
            lambda: s3.get_object(Bucket="outputs", Key=long_key),
            lambda: s3.delete_object(Bucket="outputs", Key=long_key),
            lambda: s3.create_multipart_upload(Bucket="outputs", Key=long_key),
            lambda: s3.list_objects_v2(Bucket="outputs", Prefix=long_key + "/"),
        ]
        for call in calls:
            with pytest.raises(ClientError) as refused:
                await off_loop(call)
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "outputs", "Key": "ok.txt"}, ExpiresIn=600
        )
        today = datetime.now(UTC).strftime("%Y%m%d")
        bad = url.replace(f"X-Amz-Date={today}T", "X-Amz-Date=20261399T").replace(
            f"%2F{today}%2F", "%2F20261399%2F"
        )
        assert bad != url
        assert (await client.get(bad)).status_code == 400


class TestDatasetFolders:
    async def test_an_uploaded_dataset_folder_holds_only_its_objects(
        self, client: httpx.AsyncClient
    ) -> None:
        s3 = s3_client(client, await make_key(client, bucket="datasets"))
        await off_loop(lambda: s3.create_bucket(Bucket="datasets"))
        await off_loop(
            lambda: s3.put_object(
                Bucket="datasets", Key="olga/shapes/img0.png", Body=b"png", ContentType="image/png"
            )
        )
        root = client.app.state.ctx.settings.storage_dir  # type: ignore[attr-defined]
        shapes = root / "datasets" / "olga" / "shapes"
        assert [p.name for p in shapes.rglob("*")] == ["img0.png"]
        head = await off_loop(
            lambda: s3.head_object(Bucket="datasets", Key="olga/shapes/img0.png")
        )
        assert head["ContentType"] == "image/png"

"""AvatarManager and the asset endpoint, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import zlib
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from avatarkit.errors import AvatarError, AvatarErrorCode
from avatarkit.manager import AvatarManager, LoadProgress, LoadState
from avatarkit.sdk import AvatarSDK, Configuration, Environment
from avatarkit.server.app import STORE_KEY, AvatarStore, BackgroundServer, create_app, run_in_background

pytestmark = pytest.mark.asyncio


def make_bundle(root: pathlib.Path, avatar_id: str, sizes: dict[str, int], version: int = 1) -> dict[str, bytes]:
    """A bundle of random files (the manager never parses the model while loading)."""
    directory = root / avatar_id
    directory.mkdir(parents=True)
    contents = {name: os.urandom(size) for name, size in sizes.items()}
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    names = list(sizes)
    manifest = {
        "format": "avatarkit-avatar",
        "format_version": version,
        "id": avatar_id,
        "name": avatar_id.title(),
        "model": names[0],
        "idle": names[1] if len(names) > 1 else None,
        "files": [{"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in contents.items()],
        "camera": {"target": [0, 1.6, 0], "distance": 0.6, "fov_y_deg": 30},
    }
    if manifest["idle"] is None:
        del manifest["idle"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return contents


class Recorder:
    """Records every request the asset endpoint sees; can serve files slowly to be killed mid-way."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, int]] = []
        self.slow = False
        self.killed = False

    def file_requests(self) -> list[str]:
        return [p for p, _, _ in self.requests if not p.endswith("manifest.json") and p != "/v1/avatars"]

    @web.middleware
    async def middleware(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        if self.slow and not request.path.endswith("manifest.json"):
            store = request.app[STORE_KEY]
            _, _, _, avatar_id, name = request.path.split("/")
            data = (store.directory(avatar_id) / name).read_bytes()  # type: ignore[operator]
            response = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await response.prepare(request)
            self.requests.append((request.path, request.headers.get("Range"), 200))
            for i in range(0, len(data), 4096):
                if self.killed:
                    # Like a killed process: the connection drops mid-body, nothing is finished.
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                await response.write(data[i : i + 4096])
                await asyncio.sleep(0.002)
            return response
        return await handler(request)

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        # At prepare time the status is final (a FileResponse decides on 206 or 304 only then).
        if not self.slow:
            self.requests.append((request.path, request.headers.get("Range"), response.status))


def serve(root: pathlib.Path, recorder: Recorder) -> BackgroundServer:
    store = AvatarStore([root])
    app = create_app(store)
    app.middlewares.append(recorder.middleware)
    app.on_response_prepare.append(recorder.on_prepare)
    return run_in_background(app)


@pytest.fixture
def bundles(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "served"
    make_bundle(root, "default", {"avatar.glb": 300_000, "idle.ak1": 5_000})
    make_bundle(root, "sam", {"avatar.glb": 120_000})
    return root


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(bundles: pathlib.Path, recorder: Recorder) -> Iterator[BackgroundServer]:
    with serve(bundles, recorder) as s:
        yield s


@pytest.fixture
def manager(server: BackgroundServer, tmp_path: pathlib.Path) -> AvatarManager:
    return AvatarManager(asset_url=server.url, cache_dir=tmp_path / "cache")


async def test_load_reports_monotonic_progress_then_caches(manager: AvatarManager, recorder: Recorder) -> None:
    reports: list[LoadProgress] = []
    avatar = await manager.load("default", reports.append)
    assert avatar.id == "default" and avatar.name == "Default"
    assert not avatar.is_from_cache
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions)
    assert reports[0].state is LoadState.DOWNLOADING and reports[0].fraction == 0.0
    assert reports[-1].state is LoadState.COMPLETED and reports[-1].fraction == 1.0
    assert len(reports) > 3  # real intermediate progress, not just start and end
    assert avatar.model_path.read_bytes() == (manager.cache_dir / "default" / "avatar.glb").read_bytes()
    assert sorted(recorder.file_requests()) == [
        "/v1/avatars/default/avatar.glb",
        "/v1/avatars/default/idle.ak1",
    ]

    # Second load: only a conditional manifest request, answered 304; no file requests.
    recorder.requests.clear()
    again = await manager.load("default")
    assert again.is_from_cache
    assert recorder.requests == [("/v1/avatars/default/manifest.json", None, 304)]
    assert manager.retrieve("default") is not None
    assert manager.cache_size("default") > 305_000
    assert manager.total_cache_size() == manager.cache_size("default")


async def test_corrupted_cache_file_is_refetched(manager: AvatarManager, recorder: Recorder) -> None:
    avatar = await manager.load("default")
    data = bytearray(avatar.model_path.read_bytes())
    data[1000] ^= 0xFF
    avatar.model_path.write_bytes(bytes(data))
    assert manager.retrieve("default") is None  # retrieve verifies, and finds the damage
    recorder.requests.clear()
    again = await manager.load("default")
    assert not again.is_from_cache
    assert recorder.file_requests() == ["/v1/avatars/default/avatar.glb"]
    assert hashlib.sha256(again.model_path.read_bytes()).hexdigest() == again.manifest.file("avatar.glb").sha256


async def test_concurrent_loads_share_one_download(manager: AvatarManager, recorder: Recorder) -> None:
    a, b = await asyncio.gather(manager.load("default"), manager.load("default"))
    assert a.directory == b.directory
    assert sorted(recorder.file_requests()) == [
        "/v1/avatars/default/avatar.glb",
        "/v1/avatars/default/idle.ak1",
    ]


async def test_server_killed_mid_download_then_resume(
    bundles: pathlib.Path, tmp_path: pathlib.Path, recorder: Recorder
) -> None:
    recorder.slow = True
    first = serve(bundles, recorder)
    manager = AvatarManager(asset_url=first.url, cache_dir=tmp_path / "cache")
    reports: list[LoadProgress] = []
    halfway = asyncio.Event()

    def on_progress(p: LoadProgress) -> None:
        reports.append(p)
        if p.fraction > 0.3:
            halfway.set()

    load = asyncio.ensure_future(manager.load("default", on_progress))
    await asyncio.wait_for(halfway.wait(), 30)
    recorder.killed = True
    await asyncio.get_running_loop().run_in_executor(None, first.stop)
    with pytest.raises(AvatarError) as info:
        await load
    assert info.value.code is AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS
    assert reports[-1].state is LoadState.FAILED
    cache = tmp_path / "cache" / "default"
    # Nothing a later load would trust: no manifest, no final file, only a partial download.
    assert not (cache / "manifest.json").exists()
    assert not (cache / "avatar.glb").exists()
    part = cache / "avatar.glb.part"
    part_size = part.stat().st_size
    assert 0 < part_size < 300_000
    assert manager.retrieve("default") is None

    recorder.slow = recorder.killed = False
    recorder.requests.clear()
    with serve(bundles, recorder) as second:
        manager.asset_url = second.url
        avatar = await manager.load("default")
    ranges = [r for p, r, _ in recorder.requests if p.endswith("avatar.glb")]
    assert ranges == [f"bytes={part_size}-"]  # resumed where the killed download stopped
    assert (avatar.directory / "avatar.glb").stat().st_size == 300_000
    assert manager.retrieve("default") is not None


async def test_unknown_and_invalid_ids(manager: AvatarManager) -> None:
    with pytest.raises(AvatarError) as info:
        await manager.load("nobody")
    assert info.value.code is AvatarErrorCode.AVATAR_ID_UNRECOGNIZED
    for bad in ("../etc", "/abs", "a/b", ".hidden", "x" * 65, "", "a..b"):
        with pytest.raises(AvatarError) as info:
            await manager.load(bad)
        assert info.value.code is AvatarErrorCode.INVALID_ARGUMENT
        with pytest.raises(AvatarError):
            manager.clear(bad)


async def test_offline_uses_cache_and_fails_without_it(
    bundles: pathlib.Path, tmp_path: pathlib.Path, recorder: Recorder
) -> None:
    with serve(bundles, recorder) as s:
        manager = AvatarManager(asset_url=s.url, cache_dir=tmp_path / "cache")
        await manager.load("sam")
    # The server is gone now.
    offline = await manager.load("sam")
    assert offline.is_from_cache
    with pytest.raises(AvatarError) as info:
        await manager.load("default")
    assert info.value.code is AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA


async def test_cancel_load(bundles: pathlib.Path, tmp_path: pathlib.Path, recorder: Recorder) -> None:
    recorder.slow = True
    with serve(bundles, recorder) as s:
        manager = AvatarManager(asset_url=s.url, cache_dir=tmp_path / "cache")
        load = asyncio.ensure_future(manager.load("default"))
        await asyncio.sleep(0.05)
        assert manager.cancel_load("default")
        with pytest.raises(AvatarError) as info:
            await load
        assert info.value.code is AvatarErrorCode.LOAD_CANCELLED
        assert not manager.cancel_load("default")


async def test_newer_format_is_incompatible(tmp_path: pathlib.Path, recorder: Recorder) -> None:
    root = tmp_path / "served"
    make_bundle(root, "future", {"avatar.glb": 100}, version=99)
    # The server skips bundles it cannot read, so serve the manifest raw to reach the client's check.
    app = web.Application()

    async def manifest(_: web.Request) -> web.FileResponse:
        return web.FileResponse(root / "future" / "manifest.json")

    app.router.add_get("/v1/avatars/future/manifest.json", manifest)
    with run_in_background(app) as s:
        manager = AvatarManager(asset_url=s.url, cache_dir=tmp_path / "cache")
        with pytest.raises(AvatarError) as info:
            await manager.load("future")
    assert info.value.code is AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET


async def test_clear_and_lru(manager: AvatarManager) -> None:
    await manager.load("default")
    await asyncio.sleep(0.02)
    await manager.load("sam")
    assert manager.cached_ids() == ["sam", "default"]
    assert manager.clear_lru(1) == ["default"]
    assert manager.cached_ids() == ["sam"]
    manager.clear("sam")
    assert manager.retrieve("sam") is None and manager.total_cache_size() == 0
    await manager.load("sam")
    manager.clear_all()
    assert manager.cached_ids() == []


async def test_not_configured(tmp_path: pathlib.Path) -> None:
    manager = AvatarManager(cache_dir=tmp_path)
    with pytest.raises(AvatarError) as info:
        await manager.load("default")
    assert info.value.code is AvatarErrorCode.SDK_NOT_INITIALIZED


async def test_endpoint_list_range_and_etag(server: BackgroundServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/v1/avatars", headers={"Accept-Encoding": "gzip"}) as r:
            doc = await r.json()
        assert [a["id"] for a in doc["avatars"]] == ["default", "sam"]
        url = f"{server.url}/v1/avatars/default/avatar.glb"
        async with session.get(url, headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 206
            assert len(await r.read()) == 100
        async with session.get(f"{server.url}/v1/avatars/default/manifest.json") as r:
            etag = r.headers["ETag"]
        async with session.get(f"{server.url}/v1/avatars/default/manifest.json", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        for path in (
            "/v1/avatars/nobody/manifest.json",
            "/v1/avatars/default/secret.txt",
            "/v1/avatars/../x",
        ):
            async with session.get(server.url + path) as r:
                assert r.status == 404


async def test_list_remote_is_callable_on_the_class_like_the_other_shared_methods(
    server: BackgroundServer, tmp_path: pathlib.Path
) -> None:
    AvatarSDK.initialize("demo", Configuration(environment=Environment.local(port=server.port)))
    AvatarManager._shared_instance = AvatarManager(cache_dir=tmp_path / "cache")
    try:
        listed = await AvatarManager.list_remote()  # runs on AvatarManager.shared
        assert [a["id"] for a in listed] == ["default", "sam"]
        assert listed == await AvatarManager.shared.list_remote()
        assert [a["name"] for a in listed] == ["Default", "Sam"] and all(a["size"] > 0 for a in listed)
        server.stop()
        with pytest.raises(AvatarError) as info:
            await AvatarManager.list_remote()
        assert info.value.code is AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA
    finally:
        AvatarManager._shared_instance = None
        AvatarSDK.cleanup()


def hostile_endpoint(root: pathlib.Path, mode: dict[str, str]) -> web.Application:
    """An asset endpoint that misbehaves as ``mode["files"]`` says: ``trickle`` (a byte every 50 ms),
    ``slow`` (2 kB every 100 ms), or ``normal``; manifests always come in two TCP segments and the
    listing is a gzip bomb."""
    app = web.Application()

    async def manifest(request: web.Request) -> web.StreamResponse:
        data = (root / request.match_info["id"] / "manifest.json").read_bytes()
        response = web.StreamResponse(headers={"Content-Length": str(len(data)), "Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        await asyncio.sleep(0.1)  # the client has seen the first segment alone
        await response.write(data[len(data) // 2 :])
        return response

    async def file(request: web.Request) -> web.StreamResponse:
        data = (root / request.match_info["id"] / request.match_info["file"]).read_bytes()
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        step, pause = {"trickle": (1, 0.05), "slow": (2048, 0.1)}.get(mode["files"], (len(data), 0.0))
        for i in range(0, len(data), step):
            await response.write(data[i : i + step])
            await asyncio.sleep(pause)
        return response

    async def listing(request: web.Request) -> web.Response:
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip: 64 MB of JSON spaces in about 64 kB
        payload = gz.compress(b'{"avatars": [') + gz.compress(b" " * (64 << 20)) + gz.compress(b"]}") + gz.flush()
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app.router.add_get("/v1/avatars", listing)
    app.router.add_get("/v1/avatars/{id}/manifest.json", manifest)
    app.router.add_get("/v1/avatars/{id}/{file}", file)
    return app


async def test_manifest_in_two_segments_loads(bundles: pathlib.Path, tmp_path: pathlib.Path) -> None:
    with run_in_background(hostile_endpoint(bundles, {"files": "normal"})) as s:
        avatar = await AvatarManager(asset_url=s.url, cache_dir=tmp_path / "cache").load("sam")
    assert avatar.id == "sam" and not avatar.is_from_cache


async def test_listing_gzip_bomb_is_capped(bundles: pathlib.Path, tmp_path: pathlib.Path) -> None:
    with run_in_background(hostile_endpoint(bundles, {"files": "normal"})) as s, pytest.raises(AvatarError) as info:
        await AvatarManager(asset_url=s.url, cache_dir=tmp_path / "cache").list_remote()
    assert info.value.code is AvatarErrorCode.FAILED_TO_FETCH_AVATAR_METADATA
    assert "larger than" in info.value.message


@pytest.mark.parametrize(
    ("files", "options", "phrase"),
    [
        ("trickle", {"timeout": 0.5}, "stalled"),  # a byte now and then keeps no download alive
        ("slow", {"timeout": 0.5, "file_timeout": 1.0}, "took longer than 1 s"),  # 20 kB/s: too slow in all
    ],
)
async def test_stalled_or_slow_download_fails_and_leaves_the_cache_consistent(
    bundles: pathlib.Path, tmp_path: pathlib.Path, files: str, options: dict[str, float], phrase: str
) -> None:
    mode = {"files": files}
    cache = tmp_path / "cache"
    with run_in_background(hostile_endpoint(bundles, mode)) as s:
        manager = AvatarManager(asset_url=s.url, cache_dir=cache, **options)  # type: ignore[arg-type]
        with pytest.raises(AvatarError) as info:
            await manager.load("sam")
        assert info.value.code is AvatarErrorCode.FAILED_TO_DOWNLOAD_AVATAR_ASSETS
        assert phrase in info.value.message
        # Nothing half-done counts as cached; the next load (the server well again) completes it.
        assert manager.retrieve("sam") is None and manager.cached_ids() == []
        assert not (cache / "sam" / "manifest.json").exists()
        mode["files"] = "normal"
        avatar = await manager.load("sam")
        assert manager.retrieve("sam") is not None and avatar.model_path.stat().st_size == 120_000


async def test_endpoint_serves_only_regular_files_inside_the_bundle(
    bundles: pathlib.Path, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    glb = bundles / "default" / "avatar.glb"
    outside = tmp_path / "outside.glb"  # the same bytes: only where it lives is wrong
    outside.write_bytes(glb.read_bytes())
    glb.unlink()
    glb.symlink_to(outside)
    idle = bundles / "default" / "idle.ak1"
    idle.write_bytes(idle.read_bytes() + b"x")  # not the manifest's size
    inside = bundles / "sam" / "avatar.glb"  # a symlink that stays inside the bundle is fine
    (bundles / "sam" / "real.glb").write_bytes(inside.read_bytes())
    inside.unlink()
    inside.symlink_to(bundles / "sam" / "real.glb")
    with serve(bundles, Recorder()) as s:
        async with aiohttp.ClientSession() as session:
            for name in ("avatar.glb", "idle.ak1"):
                async with session.get(f"{s.url}/v1/avatars/default/{name}") as r:
                    assert r.status == 404, name
            async with session.get(f"{s.url}/v1/avatars/sam/avatar.glb") as r:
                assert r.status == 200 and len(await r.read()) == 120_000
    refusals = [r.getMessage() for r in caplog.records if "refusing to serve" in r.getMessage()]
    assert any("leads out of the bundle" in m for m in refusals) and any("not the manifest's" in m for m in refusals)


async def test_endpoint_range_follows_rfc_9110(server: BackgroundServer) -> None:
    url = f"{server.url}/v1/avatars/sam/avatar.glb"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Range": "bytes=-0"}) as r:
            assert r.status == 416 and r.headers["Content-Range"] == "bytes */120000"
        async with session.get(url) as r:
            etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
        for if_range, status, length in (
            ('"stale-etag"', 200, 120_000),  # the file changed: the whole of it, not a piece
            ('W/"' + etag.strip('"') + '"', 200, 120_000),  # weak tags never match If-Range
            ("Thu, 01 Jan 2004 00:00:00 GMT", 200, 120_000),
            (etag, 206, 100),
            (modified, 206, 100),
        ):
            async with session.get(url, headers={"Range": "bytes=0-99", "If-Range": if_range}) as r:
                assert (r.status, len(await r.read())) == (status, length), if_range

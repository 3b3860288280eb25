"""Jobs whose steps declare outputs (copied next to each test config): `package` writes a
tarball and a report directory; `forgetful` declares an output it never writes; `broken` ends
with RC 8 after writing its output."""

from __future__ import annotations

from pilothouse.jobs import ERROR, Param, StepContext, job

package = job("package", params={"version": Param(str)})


@package.step(outputs=["dist/shop-{version}.tar"])
def build(ctx: StepContext) -> None:
    (tarball,) = ctx.outputs
    tarball.parent.mkdir(parents=True, exist_ok=True)
    tarball.write_bytes(f"shop {ctx.params['version']}\n".encode() * 100)


@package.step(outputs=["reports/{version}"])
async def report(ctx: StepContext) -> int:
    (directory,) = ctx.outputs
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tests.txt").write_text("42 passed\n")
    (directory / "coverage.txt").write_text("91%\n")
    return 4  # a warning still yields attested outputs


forgetful = job("forgetful")


@forgetful.step(outputs=["never-written.txt"])
def skip_writing(ctx: StepContext) -> None:
    ctx.log.info("not writing %s", ctx.outputs[0])


broken = job("broken")


@broken.step(outputs=["half.txt"])
def half(ctx: StepContext) -> int:
    ctx.outputs[0].write_text("half done\n")
    return ERROR


async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """The service these jobs belong to (serve needs one): it has no routes of its own."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

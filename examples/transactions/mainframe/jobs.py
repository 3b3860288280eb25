"""The batch job `payroll` (PAYROLL in the JCL): three steps with return codes, like a JCL job.

    pilothouse jobs run payroll                      # RC 0: three steps ran
    pilothouse jobs run payroll --param post_rc=12   # RC 12: job_return_code 12, errors_total +1

STEP010 extracts (RC 0), STEP020 posts (RC `post_rc`: 0 ok, 4 warning, 12 error), STEP030
prints the report only while the highest RC so far is below 8 (COND=(8,LE) in JCL terms).
"""

from __future__ import annotations

from pilothouse.jobs import Param, StepContext, job

payroll = job(
    "payroll",
    params={"post_rc": Param(int, default=0, help="the return code STEP020 ends with (0, 4, 12)")},
    description="Nightly payroll: extract, post, report.",
    on_lost="fail",  # posting twice would pay twice
)


@payroll.step("step010-extract", timeout="5m")
def extract(ctx: StepContext) -> int:
    ctx.shared["records"] = 3
    ctx.log.info("extracted %d records", ctx.shared["records"])
    return 0


@payroll.step("step020-post", timeout="5m")
def post(ctx: StepContext) -> int:
    rc: int = ctx.params["post_rc"]
    ctx.log.info("posted %d records, RC=%d", ctx.shared["records"], rc)
    return rc


@payroll.step("step030-report", when_below=8)
def report(ctx: StepContext) -> int:
    ctx.log.info("report printed")
    return 0

"""The bench's report: each figure against the raw limit that bounds it, a table and a chart."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bench.figures import (
    ASSUMED_PEAK,
    EVENTS_PER_JOB,
    HOPS_PER_JOB,
    MESSAGES_PER_JOB,
    OVERLOADED,
    PIPELINE_EVENTS,
    PIPELINE_MESSAGES,
    console,
)


def ratios(result: dict) -> dict:
    raw = result.get("raw", {})
    if not raw:
        return {}
    broker = min(raw["produce_msgs_per_s"], raw["consume_msgs_per_s"])
    database = raw["bulk_upserts_per_s"]
    found = {}
    if "throughput" in result:
        jobs_per_s = result["throughput"]["jobs_per_s"]
        found["throughput_vs_broker"] = jobs_per_s * MESSAGES_PER_JOB / broker
        found["throughput_vs_database"] = jobs_per_s * EVENTS_PER_JOB / database
    if "pipeline" in result:
        pipelines_per_s = result["pipeline"]["jobs_per_s"]
        found["pipeline_vs_broker"] = pipelines_per_s * PIPELINE_MESSAGES / broker
        found["pipeline_vs_database"] = pipelines_per_s * PIPELINE_EVENTS / database
        if "throughput" in result:
            found["steps_vs_jobs"] = result["pipeline"]["steps_per_s"] / result["throughput"]["jobs_per_s"]
    if "latency" in result and "hop_ms_p50" in raw:
        found["latency_vs_hops"] = result["latency"]["latency_ms_p50"] / (HOPS_PER_JOB * raw["hop_ms_p50"])
    if "ingest" in result:
        found["ingest_single_vs_produce"] = result["ingest"]["single_accepted_per_s"] / raw["produce_msgs_per_s"]
        found["ingest_batch_vs_produce"] = result["ingest"]["batch_accepted_per_s"] / raw["produce_msgs_per_s"]
    if "client" in result:
        found["client_submit_vs_produce"] = result["client"]["submit_per_s"] / raw["produce_msgs_per_s"]
        if "hop_ms_p50" in raw:
            found["client_latency_vs_hops"] = result["client"]["latency_ms_p50"] / (HOPS_PER_JOB * raw["hop_ms_p50"])
    if "projector" in result:
        found["projector_vs_database"] = result["projector"]["events_per_s"] / database
    if "replay" in result:
        found["replay_vs_database"] = result["replay"]["events_per_s"] / database
    return found


def report(result: dict) -> None:
    raw, r = result.get("raw", {}), result["ratios"]
    table = Table(title=f"jobledger bench — {result['broker']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio to the raw limit that bounds it", justify="right")
    if raw:
        table.add_row("raw broker produce", f"{raw['produce_msgs_per_s']:,.0f} msg/s", "")
        table.add_row("raw broker consume", f"{raw['consume_msgs_per_s']:,.0f} msg/s", "")
        table.add_row(
            "raw broker hop (produce → consumed)", f"p50 {raw['hop_ms_p50']:,.1f} · p99 {raw['hop_ms_p99']:,.1f} ms", ""
        )
        table.add_row("raw database bulk upsert", f"{raw['bulk_upserts_per_s']:,.0f} ops/s", "")
    if "client" in result:
        c = result["client"]
        runs = " → ".join(f"{run['end_to_end_jobs_per_s']:,.0f}" for run in c["runs"])
        table.add_row(
            f"client method: {c['jobs']:,} sequential POST /jobs",
            f"{c['submit_per_s']:,.0f} jobs/s",
            f"{r['client_submit_vs_produce']:.1%} of raw produce",
        )
        table.add_row(
            "  then waited for, end to end (runs 1 → 3)",
            f"{c['end_to_end_jobs_per_s']:,.0f} jobs/s ({runs})",
            "flat" if c["flat"] else "NOT flat: a later run more than 10% below the first",
        )
        table.add_row(
            "  one at a time, submit → SUCCEEDED",
            f"p50 {c['latency_ms_p50']:,.1f} · p99 {c['latency_ms_p99']:,.1f} ms",
            f"p50 = {r['client_latency_vs_hops']:.1f}× the floor of {HOPS_PER_JOB} raw hops ({HOPS_PER_JOB * raw['hop_ms_p50']:,.1f} ms)"
            if "client_latency_vs_hops" in r
            else "",
        )
    if "throughput" in result:
        t = result["throughput"]
        table.add_row(
            f"end to end, {t['jobs']:,} no-op jobs",
            f"{t['jobs_per_s']:,.1f} jobs/s",
            f"{r['throughput_vs_broker']:.1%} of broker ({MESSAGES_PER_JOB} msg/job); "
            f"{r['throughput_vs_database']:.1%} of database ({EVENTS_PER_JOB} events/job)",
        )
        table.add_row(
            "  submit → SUCCEEDED p50 / p99 (saturated)", f"{t['latency_ms_p50']:,.0f} / {t['latency_ms_p99']:,.0f} ms", ""
        )
        if len(t.get("jobs_per_runner", {})) > 1:
            shares = sorted(t["jobs_per_runner"].values(), reverse=True)
            table.add_row(f"  jobs per runner ({len(shares)} runners)", " / ".join(f"{n:,}" for n in shares), "")
    if "pipeline" in result:
        p = result["pipeline"]
        table.add_row(
            f"end to end, {p['jobs']:,} pipelines of {p['steps']} no-op steps in a chain",
            f"{p['jobs_per_s']:,.1f} pipelines/s · {p['steps_per_s']:,.1f} steps/s",
            f"{r['pipeline_vs_broker']:.1%} of broker ({PIPELINE_MESSAGES} msg/pipeline); "
            f"{r['pipeline_vs_database']:.1%} of database ({PIPELINE_EVENTS} events/pipeline)"
            + (f"; a step costs {1 / r['steps_vs_jobs']:.1f}× a no-op job" if "steps_vs_jobs" in r else ""),
        )
        table.add_row(
            "  submit → SUCCEEDED p50 / p99 (saturated)", f"{p['latency_ms_p50']:,.0f} / {p['latency_ms_p99']:,.0f} ms", ""
        )
    if "latency" in result:
        lat = result["latency"]
        table.add_row(
            f"latency at {lat['offered_jobs_per_s']:.0f} jobs/s offered "
            + ("(20% of peak)" if lat.get("peak_measured", True) else f"(no throughput run: 20% of {ASSUMED_PEAK:.0f})"),
            f"p50 {lat['latency_ms_p50']:,.0f} · p95 {lat['latency_ms_p95']:,.0f} · p99 {lat['latency_ms_p99']:,.0f} ms",
            f"p50 = {r['latency_vs_hops']:.1f}× the floor of {HOPS_PER_JOB} raw hops ({HOPS_PER_JOB * raw['hop_ms_p50']:,.0f} ms)"
            if "latency_vs_hops" in r
            else "",
        )
        if lat.get("completed_jobs_per_s", lat["offered_jobs_per_s"]) < OVERLOADED * lat["offered_jobs_per_s"]:
            table.add_row(
                "  overloaded: jobs/s completed",
                f"{lat['completed_jobs_per_s']:,.1f} jobs/s",
                "under the offered load: the latency above is mostly queueing",
            )
    if "ingest" in result:
        i = result["ingest"]
        single, batch = f"{i['single_accepted_per_s']:,.0f} jobs/s", f"{i['batch_accepted_per_s']:,.0f} jobs/s"
        table.add_row("ingest only, single POST /jobs", single, f"{r['ingest_single_vs_produce']:.1%} of raw produce")
        table.add_row("ingest only, POST /jobs:batch", batch, f"{r['ingest_batch_vs_produce']:.1%} of raw produce")
    if "projector" in result:
        fold = f"{result['projector']['events_per_s']:,.0f} events/s"
        table.add_row("projector fold", fold, f"{r['projector_vs_database']:.1%} of raw bulk upsert")
    if "replay" in result:
        replay = result["replay"]
        table.add_row(
            f"replay ({replay['events']:,} events)",
            f"{replay['events_per_s']:,.0f} events/s",
            f"{r['replay_vs_database']:.1%} of raw bulk upsert",
        )
    console.print(table)
    hops = result.get("latency", {}).get("hops")
    if hops:
        where = Table(title="where the latency goes (latency scenario, per hop)")
        where.add_column("hop")
        where.add_column("p50", justify="right")
        where.add_column("p95", justify="right")
        for hop in hops:
            where.add_row(hop["hop"], f"{hop['p50_ms']:,.1f} ms", f"{hop['p95_ms']:,.1f} ms")
        console.print(where)


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    names = {
        "throughput_vs_broker": "end-to-end\nvs broker",
        "throughput_vs_database": "end-to-end\nvs database",
        "pipeline_vs_database": "pipelines\nvs database",
        "ingest_single_vs_produce": "ingest single\nvs produce",
        "ingest_batch_vs_produce": "ingest batch\nvs produce",
        "projector_vs_database": "projector\nvs bulk upsert",
        "replay_vs_database": "replay\nvs bulk upsert",
    }
    for key, label in names.items():
        if key in result["ratios"]:
            labels.append(label)
            values.append(100 * result["ratios"][key])
    figure, axis = plt.subplots(figsize=(9, 4.5))
    bars = axis.bar(labels, values, color="#3b6ea8")
    axis.bar_label(bars, fmt="%.1f%%")
    axis.set_ylabel("% of the raw limit measured in the same run")
    axis.set_title(f"jobledger bench — {result['broker']} — {result['at'][:19]}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

"""Observability of the live control plane: Prometheus metrics (``metrics``), OpenTelemetry
traces of each job's way from submission to running (``tracing``), GPU telemetry per
allocation (``telemetry``), idle-GPU reclaim (``idle``) and start-time estimates for pending
jobs (``eta``, ``forecast``). Each part subscribes to the scheduling loop's cycle reports or
reads the store; none of them changes a scheduling decision."""

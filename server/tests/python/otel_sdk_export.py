"""Sends metrics, logs and spans to a running `vigil serve` with the real OpenTelemetry
Python SDK and its OTLP exporters (gRPC and HTTP/protobuf), with Kubernetes resource
attributes, then checks that a malformed protobuf over raw gRPC is INVALID_ARGUMENT.

Usage: otel_sdk_export.py GRPC_ADDR HTTP_ADDR
Prints one JSON object with what was sent.
"""
import json
import logging
import sys
import time

import grpc
from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

grpc_addr, http_addr = sys.argv[1], sys.argv[2]


def resource(pod):
    return Resource.create({
        "service.name": "checkout",
        "k8s.cluster.name": "prod",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": pod,
        "k8s.container.name": "app",
        "k8s.node.name": "node-7",
        "k8s.pod.uid": f"uid-{pod}",
        "k8s.pod.ip": "10.4.0.17" if pod.endswith("grpc") else "10.4.0.18",
    })


def run(transport, pod):
    res = resource(pod)
    if transport == "grpc":
        span_exp = GrpcSpans(endpoint=f"http://{grpc_addr}", insecure=True)
        metric_exp = GrpcMetrics(endpoint=f"http://{grpc_addr}", insecure=True)
        log_exp = GrpcLogs(endpoint=f"http://{grpc_addr}", insecure=True)
    else:
        span_exp = HttpSpans(endpoint=f"http://{http_addr}/v1/traces")
        metric_exp = HttpMetrics(endpoint=f"http://{http_addr}/v1/metrics")
        log_exp = HttpLogs(endpoint=f"http://{http_addr}/v1/logs")

    tracer_provider = TracerProvider(resource=res)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exp))
    tracer = tracer_provider.get_tracer("vigil-e2e")
    with tracer.start_as_current_span("GET /cart", kind=trace.SpanKind.SERVER) as parent:
        with tracer.start_as_current_span("SELECT carts", kind=trace.SpanKind.CLIENT,
                                          attributes={"server.address": "db.shop.svc", "server.port": 5432}) as child:
            child.add_event("query sent", {"rows": 3})
            trace_id = format(child.get_span_context().trace_id, "032x")
        parent.set_status(trace.Status(trace.StatusCode.ERROR, "cart not found"))
    tracer_provider.shutdown()

    logger_provider = LoggerProvider(resource=res)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exp))
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    log = logging.getLogger(f"e2e-{transport}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.warning("payment declined for cart %s", transport)
    logger_provider.shutdown()

    reader = PeriodicExportingMetricReader(metric_exp, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=res, metric_readers=[reader])
    meter = meter_provider.get_meter("vigil-e2e")
    counter = meter.create_counter("http.server.requests", unit="1")
    histogram = meter.create_histogram("http.server.duration", unit="ms")
    for i in range(5):
        counter.add(1, {"route": "/cart"})
        histogram.record(10.0 * (i + 1), {"route": "/cart"})
    meter_provider.force_flush()
    meter_provider.shutdown()
    return trace_id


sent = {"grpc_trace": run("grpc", "checkout-grpc"), "http_trace": run("http", "checkout-http")}

# A malformed protobuf over raw gRPC: the server must say INVALID_ARGUMENT.
channel = grpc.insecure_channel(grpc_addr)
call = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                           request_serializer=None, response_deserializer=None)
try:
    call(b"\xff\xff\xff\xff\x0f garbage", timeout=10)
    sent["malformed"] = "OK"
except grpc.RpcError as e:
    sent["malformed"] = e.code().name
    sent["malformed_message"] = e.details()
print(json.dumps(sent))

import Instrumentation
import ServiceContextModule
import Tracing

/// Writes a service context's trace headers (W3C `traceparent`/`tracestate` with an
/// OpenTelemetry tracer) into a dictionary, through the bootstrapped instrument.
struct TraceContextInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }

    /// The headers `tracer` injects for `context` (empty with a no-op tracer).
    static func headers(of context: ServiceContext, by tracer: any Tracer) -> [String: String] {
        var carrier: [String: String] = [:]
        tracer.inject(context, into: &carrier, using: TraceContextInjector())
        return carrier
    }
}

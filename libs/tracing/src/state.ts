import type { Tracer } from '@opentelemetry/api';

let installed: Tracer | undefined;

/** Whether a tracer provider is installed; without one every helper here does nothing. */
export function tracingOn(): boolean {
  return installed !== undefined;
}

/** The installed provider's tracer; undefined while tracing is off. */
export function installedTracer(): Tracer | undefined {
  return installed;
}

export function install(tracer: Tracer | undefined): void {
  installed = tracer;
}

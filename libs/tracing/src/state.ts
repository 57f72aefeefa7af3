let installed = false;

/** Whether a tracer provider is installed; without one every helper here does nothing. */
export function tracingOn(): boolean {
  return installed;
}

export function markInstalled(on: boolean): void {
  installed = on;
}

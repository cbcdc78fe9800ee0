// Loaders built from scenario specs, counted, and blockable at a named gate
// (docs/conformance.md, "Loaders"); the TypeScript twin of pydriver/loaders.py.

/** Thrown by a loader whose spec says "error": the scenario's own failure. */
export class LoaderFailure extends Error {
  override name = "LoaderFailure";
}

export interface LoaderSpec {
  value?: unknown;
  delay_ms?: number;
  block?: string;
  error?: string;
}

/** A loader as the patterns see it; the arguments (a wrapped function's) are ignored. */
export type Loader = (...args: unknown[]) => Promise<unknown>;

const GATE_LIMIT_MS = 30_000;

class Gate {
  private openGate!: () => void;
  readonly opened = new Promise<void>((resolve) => {
    this.openGate = resolve;
  });

  open(): void {
    this.openGate();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Makes loaders; counts every call; gates hold them until released. */
export class Loaders {
  calls = 0;
  private gates = new Map<string, Gate>();
  private enteredWaiters: Array<() => void> = [];

  /** Open every gate (no loader of the last scenario stays parked) and start over. */
  reset(): void {
    for (const gate of this.gates.values()) {
      gate.open();
    }
    this.gates = new Map();
    this.calls = 0;
    this.notifyEntered();
  }

  release(name: string): void {
    this.gate(name).open();
  }

  /** Resolves the next time a loader parks at a gate. */
  nextEntry(): Promise<void> {
    return new Promise((resolve) => this.enteredWaiters.push(resolve));
  }

  /**
   * Wait at gate `name` until it is released (30 s at most), without counting a call:
   * for a pattern that blocks elsewhere than in a loader (a store call). An async step
   * is answered once this parks, as for a loader with "block".
   */
  async park(name: string): Promise<void> {
    await this.wait(this.gate(name), name);
  }

  make(spec: LoaderSpec | null | undefined): Loader {
    const { value = null, delay_ms: delayMs, block, error } = spec ?? {};
    return async () => {
      this.calls += 1;
      if (block !== undefined) {
        await this.wait(this.gate(String(block)), String(block));
      }
      if (delayMs) {
        await sleep(Number(delayMs));
      }
      if (error !== undefined) {
        throw new LoaderFailure(String(error));
      }
      return value;
    };
  }

  private gate(name: string): Gate {
    let gate = this.gates.get(name);
    if (gate === undefined) {
      gate = new Gate();
      this.gates.set(name, gate);
    }
    return gate;
  }

  private async wait(gate: Gate, name: string): Promise<void> {
    this.notifyEntered();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new LoaderFailure(
              `gate ${JSON.stringify(name)} was never released`,
            ),
          ),
        GATE_LIMIT_MS,
      );
      timer.unref();
    });
    try {
      await Promise.race([gate.opened, limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  private notifyEntered(): void {
    const waiters = this.enteredWaiters;
    this.enteredWaiters = [];
    for (const resolve of waiters) {
      resolve();
    }
  }
}

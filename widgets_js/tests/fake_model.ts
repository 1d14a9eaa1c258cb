// A stand-in for anywidget's model: traits in a map, "change:<name>" events on set, and a record
// of what was saved and sent, so tests can assert what the view told Python.
import { vi } from "vitest";

type Callback = (...args: unknown[]) => void;

export class FakeModel<T extends object> {
  private values: T;
  private listeners = new Map<string, Set<Callback>>();
  save_changes = vi.fn();
  send = vi.fn();
  widget_manager = { get_model: vi.fn() };

  constructor(initial: T) {
    this.values = { ...initial };
  }

  get<K extends keyof T>(key: K): T[K] {
    return this.values[key];
  }

  set<K extends keyof T>(key: K, value: T[K]): void {
    if (this.values[key] === value) return;
    this.values[key] = value;
    for (const callback of this.listeners.get(`change:${String(key)}`) ?? []) callback();
  }

  on(name: string, callback: Callback): void {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name)!.add(callback);
  }

  off(name?: string | null, callback?: Callback | null): void {
    if (!name) this.listeners.clear();
    else if (!callback) this.listeners.delete(name);
    else this.listeners.get(name)?.delete(callback);
  }

  listenerCount(): number {
    return [...this.listeners.values()].reduce((n, set) => n + set.size, 0);
  }
}

import type { EventBus } from '../bus/EventBus.ts';
import type { EventEnvelope } from '../bus/EventEnvelope.ts';

/** Told once per `publish`, when the adapter has accepted the event (or refused it). */
export type PublishTimer = (subject: string, latencyMs: number, ok: boolean) => void;

/**
 * The bus with its `publish` timed, everything else passed through. A proxy rather than a wrapper object, so that
 * members the port gains later (and code that replaces `publish` on the host's bus) keep working unchanged; and
 * rather than timing inside each adapter, so the number is what every publisher waits for, whatever the adapter.
 */
export function timePublishes(bus: EventBus, onPublish: PublishTimer): EventBus {
  const initial = bus.publish;
  const publish = (event: EventEnvelope): Promise<void> => {
    const start = performance.now();
    const published = initial.call(bus, event);
    published.then(
      () => onPublish(event.busSubject, performance.now() - start, true),
      () => onPublish(event.busSubject, performance.now() - start, false),
    );
    return published;
  };
  return new Proxy(bus, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      // A `publish` assigned through the proxy later lands on the real bus and wins; it usually calls the timed one
      // it read before, so the timing stays in the chain (and calling `initial` here instead would loop).
      if (property === 'publish' && value === initial) return publish;
      // Methods run on the real bus: adapters keep their state in private fields, which a proxy receiver lacks.
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

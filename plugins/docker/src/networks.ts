import type Docker from 'dockerode';
import { WorkerManagerError, type PluginLogger } from '@worker-manager/plugin-sdk';
import { mapDockerError, statusOf } from './dockerErrors.ts';

/** A network the plugin makes: its name and every label it carries (the owner labels among them). */
export interface NetworkRequest {
  name: string;
  /** Internal: no route out (Strict isolation). */
  internal: boolean;
  labels: Record<string, string>;
  /** The labels that make a network of this name the plugin's own (the owner labels, and the worker id of a Strict one). */
  owned: Record<string, string>;
}

/** How many times a look-up makes the network again when it vanishes between the make and the look-up. */
const ATTEMPTS = 3;

/**
 * The plugin's networks of exactly this name (the engine's name filter matches parts of names), carrying `owned`.
 * A network of the name that is not the plugin's (no owner labels) is not one of them: it is never used or removed.
 */
export async function networksNamed(docker: Docker, name: string, owned: Record<string, string>): Promise<Docker.NetworkInspectInfo[]> {
  let rows: Docker.NetworkInspectInfo[];
  try {
    rows = await docker.listNetworks({ filters: { name: [name], label: Object.entries(owned).map(([k, v]) => `${k}=${v}`) } });
  } catch (error) {
    throw mapDockerError(error, 'list networks', { network: name });
  }
  return rows.filter((n) => n.Name === name);
}

/**
 * Finds the network `name`, or makes it, and returns the id of the one network of that name left. The engine does not
 * arbitrate concurrent makers: with `CheckDuplicate` two threads (or hosts) that both looked and found nothing can
 * both make one, and the engine keeps both under one name, after which every container that joins the name fails to
 * start ("network ... is ambiguous"). So every look-up converges: of several networks of the name, all makers and all
 * later look-ups keep the same one ({@link convergeNetworks}) and remove the others. That also repairs duplicates an
 * older version left. Containers still join by name: a maker that saw only its own network, which another then
 * removed for an older one, starts its container on the one kept (after one more look-up if it started in between).
 */
export async function ensureNetwork(docker: Docker, request: NetworkRequest, logger: PluginLogger): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    let found = await networksNamed(docker, request.name, request.owned);
    if (found.length === 0) {
      try {
        await docker.createNetwork({ Name: request.name, Driver: 'bridge', Internal: request.internal, CheckDuplicate: true, Labels: request.labels });
      } catch (error) {
        // 409: the engine saw one of that name; the look-up below finds it, unless it is not the plugin's.
        if (statusOf(error) !== 409) throw mapDockerError(error, 'create network', { network: request.name });
      }
      // Look again rather than trust the create: a concurrent maker may have made one too.
      found = await networksNamed(docker, request.name, request.owned);
    }
    if (found.length > 0) return convergeNetworks(docker, found, logger);
    if (attempt >= ATTEMPTS) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `network '${request.name}' could not be made: a network of that name exists that this instance did not make, or it is removed as soon as it is made`, {
        details: { network: request.name },
        transient: true,
      });
    }
  }
}

/**
 * Of networks sharing one name, keeps one and removes the others; returns the id of the one kept. Every thread and
 * host that sees the same networks keeps the same one: the one with containers on it (a container pins its network:
 * it cannot be removed under them), then the oldest, then the smallest id. A network that still has containers is left
 * for a later pass (it stops getting new ones, since everyone now uses the one kept).
 */
export async function convergeNetworks(docker: Docker, networks: readonly Docker.NetworkInspectInfo[], logger: PluginLogger): Promise<string> {
  if (networks.length === 1) return networks[0]!.Id;
  // The list leaves out the containers of each network; inspect has them.
  const inspected = await Promise.all(
    networks.map((n) =>
      docker
        .getNetwork(n.Id)
        .inspect()
        .then((info: Docker.NetworkInspectInfo) => info)
        .catch(() => undefined),
    ),
  );
  const live = inspected.filter((n): n is Docker.NetworkInspectInfo => n !== undefined);
  if (live.length === 0) return networks[0]!.Id;
  const inUse = (n: Docker.NetworkInspectInfo): number => (Object.keys(n.Containers ?? {}).length > 0 ? 0 : 1);
  const ordered = [...live].sort((a, b) => inUse(a) - inUse(b) || Date.parse(a.Created) - Date.parse(b.Created) || (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));
  const [kept, ...extras] = ordered as [Docker.NetworkInspectInfo, ...Docker.NetworkInspectInfo[]];
  for (const extra of extras) {
    try {
      await docker.getNetwork(extra.Id).remove();
      logger.info('docker provider: removed a second network of the same name', { network: extra.Name, removed: extra.Id.slice(0, 12), kept: kept.Id.slice(0, 12) });
    } catch (error) {
      if (statusOf(error) !== 404) logger.warn('docker provider: a second network of the same name is still in use; removed once empty', { network: extra.Name, id: extra.Id.slice(0, 12), status: statusOf(error) });
    }
  }
  return kept.Id;
}

/** Removes every network of this name the plugin owns (a Strict worker's, and any duplicate of it). */
export async function removeNetworksNamed(docker: Docker, name: string, owned: Record<string, string>, logger: PluginLogger): Promise<void> {
  let found: Docker.NetworkInspectInfo[];
  try {
    found = await networksNamed(docker, name, owned);
  } catch (error) {
    logger.warn('docker provider: could not list networks to remove', { network: name, code: (error as WorkerManagerError).code });
    return;
  }
  for (const n of found) {
    try {
      await docker.getNetwork(n.Id).remove();
    } catch (error) {
      if (statusOf(error) !== 404) logger.warn('docker provider: could not remove a network', { network: name, status: statusOf(error) });
    }
  }
}

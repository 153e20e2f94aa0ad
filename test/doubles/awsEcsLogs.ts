/**
 * The CloudWatch Logs side of the ECS double: log groups, and GetLogEvents over the awslogs stream of a task, read
 * from the task's real Docker container (one event per output line, stdout and stderr merged as awslogs merges them).
 * Tokens are `f/<n>` and `b/<n>` positions; at the end of a stream the forward token asked with comes back, which is
 * how CloudWatch says there is nothing more.
 */
import type Docker from 'dockerode';
import { readLines } from './awsEcsContainers.ts';
import { AwsError, type Body } from './awsEcsWire.ts';

const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const MAX_LIMIT = 10_000;

const invalid = (message: string): AwsError => new AwsError(400, 'InvalidParameterException', message);

/** Finds the container behind a stream, once it exists (its task's container has started). */
export type StreamLookup = (group: string, stream: string) => Docker.Container | undefined;

export class CloudWatchLogsModel {
  readonly groups = new Set<string>();
  readonly #find: StreamLookup;

  constructor(find: StreamLookup) {
    this.#find = find;
  }

  createLogGroup(body: Body): Body {
    const name = body['logGroupName'];
    if (typeof name !== 'string' || !GROUP_NAME.test(name)) throw invalid("1 validation error detected: Value at 'logGroupName' failed to satisfy constraint");
    if (this.groups.has(name)) throw new AwsError(400, 'ResourceAlreadyExistsException', 'The specified log group already exists');
    this.groups.add(name);
    return {};
  }

  async getLogEvents(body: Body): Promise<Body> {
    const group = body['logGroupName'];
    const stream = body['logStreamName'];
    if (typeof stream !== 'string') throw invalid("1 validation error detected: Value null at 'logStreamName' failed to satisfy constraint: Member must not be null");
    if (typeof group !== 'string' || !this.groups.has(group)) throw new AwsError(400, 'ResourceNotFoundException', 'The specified log group does not exist.');
    const container = this.#find(group, stream);
    if (container === undefined) throw new AwsError(400, 'ResourceNotFoundException', 'The specified log stream does not exist.');
    const lines = await readLines(container);
    const limit = typeof body['limit'] === 'number' ? Math.min(MAX_LIMIT, Math.max(1, body['limit'])) : MAX_LIMIT;
    const token = typeof body['nextToken'] === 'string' ? body['nextToken'] : undefined;
    let from: number;
    let to: number;
    if (token !== undefined) {
      const m = /^([fb])\/(\d+)$/.exec(token);
      if (m === null) throw invalid('The specified nextToken is invalid.');
      const at = Number(m[2]);
      if (m[1] === 'f') {
        from = at;
        to = Math.min(lines.length, at + limit);
      } else {
        to = at;
        from = Math.max(0, at - limit);
      }
    } else if (body['startFromHead'] === true) {
      from = 0;
      to = Math.min(lines.length, limit);
    } else {
      to = lines.length;
      from = Math.max(0, to - limit);
    }
    const events = lines.slice(from, to).map((l) => ({ timestamp: l.timestamp, message: l.message, ingestionTime: l.timestamp }));
    return { events, nextForwardToken: `f/${to}`, nextBackwardToken: `b/${from}` };
  }
}

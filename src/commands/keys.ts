/**
 * `nimbus keys add --role sensor|reporter|admin [--label L] [--rate N]`, `nimbus keys list`,
 * `nimbus keys revoke ID`: keys of the reputation service, in the same store the service opens
 * from the same configuration. The token is printed once; only its hash is stored.
 */
import { loadConfig } from '../config/index.js';
import { KEY_ROLES, type KeyRole } from '../reputation/api.js';
import { openConfiguredReputation } from '../reputation/service/open-store.js';

const EX_USAGE = 64;
const EX_NOTFOUND = 1;
const USAGE = 'usage: nimbus keys add --role sensor|reporter|admin [--label LABEL] [--rate N] | nimbus keys list | nimbus keys revoke ID\n';

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at === -1) return undefined;
  const value = args[at + 1];
  return value === undefined || value.startsWith('--') ? '' : value;
}

export async function run(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command !== 'add' && command !== 'list' && command !== 'revoke') {
    process.stderr.write(USAGE);
    return EX_USAGE;
  }
  let role: KeyRole = 'sensor';
  let rate: number | undefined;
  if (command === 'add') {
    const given = option(rest, '--role');
    if (!given || !(KEY_ROLES as readonly string[]).includes(given)) {
      process.stderr.write(`nimbus keys add: --role must be one of ${KEY_ROLES.join(', ')}\n${USAGE}`);
      return EX_USAGE;
    }
    role = given as KeyRole;
    const rateText = option(rest, '--rate');
    if (rateText !== undefined) {
      rate = Number(rateText);
      if (!Number.isFinite(rate) || rate <= 0) {
        process.stderr.write(`nimbus keys add: --rate must be a positive number of requests per second, not "${rateText}"\n`);
        return EX_USAGE;
      }
    }
  }
  if (command === 'revoke' && !rest[0]) {
    process.stderr.write(`nimbus keys revoke: which key id?\n${USAGE}`);
    return EX_USAGE;
  }
  const opened = await openConfiguredReputation(loadConfig(), 'keys');
  try {
    if (command === 'add') {
      const { key, token } = await opened.keys.addKey(role, option(rest, '--label') ?? '', rate);
      process.stderr.write(`key ${key.id} (${key.role}, ${key.rateLimit} requests/s) created; the token below is shown only now:\n`);
      process.stdout.write(`${token}\n`);
      return 0;
    }
    if (command === 'list') {
      for (const key of await opened.keys.listKeys()) {
        const state = key.revokedAt ? `revoked ${key.revokedAt}` : 'active';
        process.stdout.write(`${key.id}\t${key.role}\t${key.rateLimit}/s\t${key.createdAt}\t${state}\t${key.label}\n`);
      }
      return 0;
    }
    const id = rest[0]!;
    if (await opened.keys.revokeKey(id)) {
      process.stdout.write(`key ${id} revoked (refused by running services within seconds)\n`);
      return 0;
    }
    process.stderr.write(`nimbus keys revoke: no key ${id}\n`);
    return EX_NOTFOUND;
  } finally {
    await opened.close();
  }
}

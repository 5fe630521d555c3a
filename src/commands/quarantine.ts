export async function run(_args: string[]): Promise<number> {
  process.stderr.write('nimbus quarantine: not built yet\n');
  return 70;
}

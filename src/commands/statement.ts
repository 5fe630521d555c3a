export async function run(_args: string[]): Promise<number> {
  process.stderr.write('nimbus statement: not built yet\n');
  return 70;
}

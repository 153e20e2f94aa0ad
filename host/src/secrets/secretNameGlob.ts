/**
 * Compiles a secret name glob to a matcher: `*` matches any characters but `/`, `**` any characters, `?` one
 * character but `/`; everything else is literal. Globs come from the config, so they are compiled once at start.
 */
export function secretNameGlob(glob: string): (name: string) => boolean {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  const re = new RegExp(`^${source}$`, 's');
  return (name) => re.test(name);
}

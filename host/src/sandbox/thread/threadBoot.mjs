// The piscina filename of trusted-tier plugin threads. Plain JavaScript on purpose: it runs before any TypeScript
// loader exists in the thread. Under tsx, Node 20 does not apply tsx's loader to worker threads (newer Node does),
// so when the probe cannot be imported we register tsx here, in this thread, before loading the real entry.
async function typescriptLoads() {
  try {
    await import('./tsProbe.ts');
    return true;
  } catch (error) {
    if (error?.code === 'ERR_UNKNOWN_FILE_EXTENSION') return false;
    throw error;
  }
}

if (!(await typescriptLoads())) {
  const { register } = await import('tsx/esm/api');
  register();
}

const { default: handleCall } = await import('./threadMain.ts');
export default handleCall;

/**
 * The plugin API version a host built on this SDK offers. Plugins declare the range they need (`hostApi: '^2.0.0'`);
 * a major bump here means plugins must be rebuilt. 2.0.0: provider `createWorker` returns once the infrastructure has
 * accepted the worker (the worker-provider contract 2); plugins built for 1.x are refused at negotiation.
 */
export const HOST_API_VERSION = '2.0.0';

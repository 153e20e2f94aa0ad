/**
 * The plugin API version a host built on this SDK offers. Plugins declare the range they need (`hostApi: '^1.0.0'`);
 * a major bump here means plugins must be rebuilt.
 */
export const HOST_API_VERSION = '1.0.0';

/** Label holding the tenant a worker was created for. */
export const TENANT_LABEL = 'wm.tenant';
/** Label holding the principal id that created a worker. */
export const OWNER_LABEL = 'wm.owner';

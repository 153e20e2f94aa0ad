/** Imported by threadBoot.mjs to learn whether this thread can load TypeScript yet; it must stay side-effect free. */
export const typescriptLoads: boolean = true;

// Size limits of what a worker spec may hold, in one place. Everything in a RuntimeSpec is recorded (the provider's
// state, container labels, the host's ledger, events) and copied across the thread boundary, and a process provider
// hands command, args and env to execve(2), which refuses more than MAX_ARG_STRLEN (128 KiB) in one string and more
// than ARG_MAX (2 MiB with the default 8 MiB stack) in all of them. Without limits, a request the HTTP body limit
// lets through reaches the operating system and fails there, as an internal error. Each limit is far above what a
// CI worker needs, and small enough that what passes can be run and recorded on any provider.
//
// Lengths are in characters (JSON Schema counts code points); one character is at most 4 bytes of UTF-8.

/**
 * Largest RuntimeSpec, in bytes of its JSON (UTF-8), checked by the host at create. Its arguments and environment
 * then fit ARG_MAX with room to spare for what the provider adds, and it stays well under the API's default body
 * limit (1 MiB), so an oversized spec gets its own error code.
 */
export const MAX_SPEC_BYTES = 256 * 1024;

/**
 * Longest element of `command` and `args` (and of an exec or health-check command): 32,000 characters of up to
 * 4 bytes stay under the kernel's 128 KiB per argument.
 */
export const MAX_ARG_LENGTH = 32_000;

/** Most elements in `command`, and in `args`. */
export const MAX_ARGS = 256;

/** Most environment variables in `env`. */
export const MAX_ENV_ENTRIES = 128;

/** Longest environment variable name. */
export const MAX_ENV_NAME_LENGTH = 256;

/**
 * Longest environment variable value: with the longest name, `NAME=value` still fits the kernel's 128 KiB per
 * environment string.
 */
export const MAX_ENV_VALUE_LENGTH = 32_000;

/**
 * Longest path: `workingDir`, mount paths, host paths, secret file paths, health-check URL paths. PATH_MAX is 4096
 * bytes, and a provider may nest the path under its own folders.
 */
export const MAX_PATH_LENGTH = 1024;

/** Longest container image reference (registry, repository, tag and digest). */
export const MAX_IMAGE_LENGTH = 1024;

/** Longest `user` (`name`, `uid`, `uid:gid`, `name:group`). */
export const MAX_USER_LENGTH = 256;

/** Most labels on a worker spec (Kubernetes has no limit on the count, but every label is copied onto resources). */
export const MAX_LABELS = 64;

/** Longest label name, the part after the optional prefix (Kubernetes: 63). */
export const MAX_LABEL_NAME_LENGTH = 63;

/** Longest label key prefix, a DNS subdomain before the `/` (Kubernetes: 253). */
export const MAX_LABEL_PREFIX_LENGTH = 253;

/** Longest label value (Kubernetes: 63). */
export const MAX_LABEL_VALUE_LENGTH = 63;

/** Longest name of a resource a spec refers to (a volume claim, a secret, a config map, a service): a DNS subdomain. */
export const MAX_NAME_LENGTH = 253;

/** Most ports, volumes, secret refs, network access policies (and services in one policy), keys of one secret ref. */
export const MAX_LIST_ITEMS = 64;

/**
 * Longest `timeoutMs` of a worker, and of any delay a provider arms a timer for: 2^31 - 1 ms (24.8 days) is the
 * longest delay a Node.js timer takes; a longer one fires at once.
 */
export const MAX_TIMER_MS = 2_147_483_647;

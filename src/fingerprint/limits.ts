/**
 * Caps on how much of one message is analysed. Hostile mail can carry 10,000 parts, megabytes
 * of HTML or images that decode to gigapixels; past a cap the part is skipped and the skip is
 * counted with its reason, so a hostile message costs bounded time and memory, never a crash.
 */
export interface FingerprintLimits {
  /** MIME parts the parser accepts; beyond it the MIME tree is not analysed (mailparser's default is 1000). */
  readonly maxParts: number;
  /** Attachments (non-image) hashed per message. */
  readonly maxAttachments: number;
  /** Images decoded per message. */
  readonly maxImages: number;
  /** Images larger than this many bytes are hashed (SHA-256) but not decoded. */
  readonly maxImageBytes: number;
  /** Decoded pixels per image (width × height); more is treated as a decompression bomb. */
  readonly maxImagePixels: number;
  /** Seconds one image decode may take before sharp aborts it. */
  readonly imageTimeoutSeconds: number;
  /** Distinct URLs per message. */
  readonly maxUrls: number;
  /** Characters of visible text considered for the body hash. */
  readonly maxTextChars: number;
}

export const DEFAULT_LIMITS: FingerprintLimits = Object.freeze({
  maxParts: 12_000,
  maxAttachments: 50,
  maxImages: 10,
  maxImageBytes: 10 * 1024 * 1024,
  maxImagePixels: 25_000_000,
  imageTimeoutSeconds: 5,
  maxUrls: 100,
  maxTextChars: 200_000,
});

/** Below these, parts carry too little to identify anything (DESIGN.md fingerprint table). */
export const MIN_ATTACHMENT_BYTES = 64;
export const MIN_IMAGE_SIDE = 32;

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { boundText, MAX_QUOTED_BYTES } from '@worker-manager/plugin-sdk';

describe('boundText', () => {
  it('leaves text within the bound alone', () => {
    assert.equal(boundText('short'), 'short');
    assert.equal(boundText('x'.repeat(MAX_QUOTED_BYTES)), 'x'.repeat(MAX_QUOTED_BYTES));
  });

  it('keeps the beginning and the end of longer text around a marker with its size in bytes', () => {
    const text = `exec: "${'c'.repeat(32_000)}": executable file not found in $PATH`;
    const bounded = boundText(text);
    assert.ok(bounded.startsWith('exec: "ccc'));
    assert.ok(bounded.endsWith('": executable file not found in $PATH'), bounded.slice(-60));
    assert.match(bounded, new RegExp(`…\\[truncated: ${Buffer.byteLength(text)} bytes in all\\]…`));
    assert.ok(Buffer.byteLength(bounded) <= MAX_QUOTED_BYTES + 50, `${Buffer.byteLength(bounded)} bytes`);
  });

  it('never cuts a character in half, and counts bytes, not characters', () => {
    const text = '😀é'.repeat(1_000);
    const bounded = boundText(text, 100);
    assert.ok(!bounded.includes('\uFFFD'), bounded);
    assert.match(bounded, /truncated: 6000 bytes in all/);
    // 300 characters of 2 bytes: over 512 bytes although under 512 characters.
    assert.match(boundText('é'.repeat(300)), /truncated: 600 bytes in all/);
  });
});

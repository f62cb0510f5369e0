/**
 * Labels: names users give objects (`createTimeline({ label })`, `obj.setLabel()`), shown in
 * events, error messages, `util.inspect` and {@link inspect}'s census. A dma-buf's label is also
 * its kernel name (DMA_BUF_SET_NAME), and a merged sync_file's is its kernel name (SYNC_IOC_MERGE).
 * @module
 */
import { InvalidArgTypeError, OutOfRangeError } from '../validate';
import { objectChannel, publishObject } from './channels';

/** Longest label, in UTF-16 code units (kernel names are shorter: see DmaBuf#setLabel). */
export const MAX_LABEL_LENGTH = 256;

/** Validates a label: a string of at most {@link MAX_LABEL_LENGTH} characters (TypeError / RangeError). */
export function toLabel(value: unknown, name = 'label'): string {
  if (typeof value !== 'string') throw new InvalidArgTypeError(name, 'of type string', value);
  if (value.length > MAX_LABEL_LENGTH) throw new OutOfRangeError(name, `at most ${MAX_LABEL_LENGTH} characters long`, value.length);
  return value;
}

/** `what` with the label quoted after it: "Timeline 'client 3 acquire'" (just `what` without one). */
export function labelled(what: string, label: string | undefined): string {
  return label === undefined || label === '' ? what : `${what} '${label}'`;
}

/** Sets `held.label` (validated) for `obj`'s setLabel(), and publishes the 'label' object event. */
export function applyLabel(held: { label?: string }, obj: object, label: unknown): void {
  held.label = toLabel(label);
  if (objectChannel.hasSubscribers) publishObject('label', obj);
}

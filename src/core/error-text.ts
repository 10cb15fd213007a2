/**
 * Text for errors that wrap others: a Kafka client's "Producing messages
 * failed." holds "produce failed 9 times.", which holds the tries; the outer
 * message alone does not say what failed.
 */

/** The errors at the bottom of nested aggregates (a send's "Producing messages failed." holds "produce failed 9 times.", which holds the tries). */
export function leafErrors(error: unknown, depth = 0): unknown[] {
  const inner = (error as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(inner) || inner.length === 0 || depth > 5) return [error];
  return inner.flatMap((e) => leafErrors(e, depth + 1));
}

/**
 * The message, and for an aggregate (a Kafka client's "Producing messages
 * failed.", an AggregateError) the errors inside it: the outer message alone
 * does not say what failed.
 */
export function withInnerErrors(error: Error): string {
  const inner = leafErrors(error);
  if (inner.length === 1 && inner[0] === error) return error.message;
  const described = [...new Set(inner.map((e) => {
    const fields = (e ?? {}) as { apiId?: string; message?: string };
    return fields.apiId ? `${fields.apiId}: ${fields.message ?? ''}` : fields.message ?? String(e);
  }))];
  return `${error.message} (${described.slice(0, 5).join('; ')}${described.length > 5 ? `; and ${described.length - 5} more` : ''})`;
}

/** Partitions go only to members that read their topic (two sinks with different selections in one group). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assignBySubscription, type PlannedAssignment } from '../../src/kafka/subscription-assigner.js';

const partitions = (counts: Record<string, number>) => (topic: string): number[] => [...Array(counts[topic] ?? 0).keys()];
const plain = (plan: PlannedAssignment): Record<string, Record<string, number[]>> =>
  Object.fromEntries([...plan].map(([member, topics]) => [member, Object.fromEntries(topics)]));

describe('assignBySubscription', () => {
  it('gives each topic to its own readers only, even when the leader reads another topic', () => {
    const plan = assignBySubscription(
      [{ memberId: 'a', topics: ['orders'] }, { memberId: 'b', topics: ['logins'] }],
      partitions({ orders: 3, logins: 2 }),
    );
    assert.deepEqual(plain(plan), { a: { orders: [0, 1, 2] }, b: { logins: [0, 1] } });
  });

  it('spreads a shared topic round robin, in member id order, whatever order the members come in', () => {
    const plan = assignBySubscription(
      [{ memberId: 'm2', topics: ['t'] }, { memberId: 'm1', topics: ['t'] }, { memberId: 'm3', topics: ['t', 'u'] }],
      partitions({ t: 5, u: 2 }),
    );
    assert.deepEqual(plain(plan), { m1: { t: [0, 3] }, m2: { t: [1, 4] }, m3: { t: [2], u: [0, 1] } });
  });

  it('assigns every partition exactly once and keeps members with nothing to read', () => {
    const members = [{ memberId: 'x', topics: ['a', 'b'] }, { memberId: 'y', topics: ['b'] }, { memberId: 'z', topics: ['gone'] }];
    const plan = assignBySubscription(members, partitions({ a: 4, b: 7 }));
    const owned = [...plan.values()].flatMap((topics) => [...topics].flatMap(([topic, ids]) => ids.map((id) => `${topic}/${id}`)));
    assert.deepEqual(owned.sort(), [...['a/0', 'a/1', 'a/2', 'a/3'], ...[0, 1, 2, 3, 4, 5, 6].map((id) => `b/${id}`)].sort());
    assert.deepEqual(plain(plan).z, {});
    assert.ok((plan.get('y')?.get('b')?.length ?? 0) >= 3, 'the shared topic is spread');
  });
});

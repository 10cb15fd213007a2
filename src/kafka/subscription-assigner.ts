/**
 * A partition assigner that gives each topic's partitions only to the
 * members subscribed to that topic.
 *
 * Why: kafkajs' RoundRobinAssigner spreads the partitions of the *leader's*
 * topics over *all* members. When two sinks with different selections share
 * a group (two deployments left on the default `walbridge-sink`, or a new
 * `--table` rolled out one member at a time), a member is handed partitions
 * it does not read, its own topics' partitions go to nobody, and it waits for
 * ever without a word (a `--once` run never ends). Java's consumers assign
 * by each member's own subscription; this does the same.
 *
 * The group picks the first protocol every member offers: sinks list this one
 * first and kafkajs' round robin second, so a group mixing in an older
 * walbridge still forms (and behaves as before until all members offer this).
 */
import kafkajs from 'kafkajs';

export const SUBSCRIPTION_ASSIGNER_NAME = 'WalbridgeSubscriptionRoundRobin';

/** member → topic → partitions. */
export type PlannedAssignment = Map<string, Map<string, number[]>>;

/**
 * Round robin over the members, topic by topic and partition by partition,
 * each partition to the next member (in member id order) subscribed to its
 * topic. Pure: the plan for the subscriptions and partition ids given.
 */
export function assignBySubscription(
  members: readonly { memberId: string; topics: readonly string[] }[],
  partitionsOf: (topic: string) => readonly number[],
): PlannedAssignment {
  const sorted = [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  const subscribed = sorted.map((member) => new Set(member.topics));
  const topics = [...new Set(sorted.flatMap((member) => member.topics))].sort();
  const plan: PlannedAssignment = new Map(sorted.map((member) => [member.memberId, new Map()]));
  let next = 0;
  for (const topic of topics) {
    for (const partition of [...partitionsOf(topic)].sort((a, b) => a - b)) {
      // Some member is subscribed to every topic in the list: the search ends within one round. (With
      // different subscriptions the shared counter can leave members uneven; every partition has a reader.)
      while (!subscribed[next % sorted.length]?.has(topic)) next += 1;
      const member = plan.get(sorted[next % sorted.length]!.memberId)!;
      const owned = member.get(topic);
      if (owned) owned.push(partition);
      else member.set(topic, [partition]);
      next += 1;
    }
  }
  return plan;
}

export const subscriptionAssigner: kafkajs.PartitionAssigner = ({ cluster, logger }) => ({
  name: SUBSCRIPTION_ASSIGNER_NAME,
  version: 0,
  async assign({ members }) {
    const subscriptions = members.map(({ memberId, memberMetadata }) => ({
      memberId,
      topics: kafkajs.AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? [],
    }));
    // The leader's metadata covers its own topics only: add the others' (a metadata refresh when new).
    // When the leader may not describe one (ACLs per deployment), the plan leaves out the topics it could not
    // load rather than failing every join of the group.
    try {
      await cluster.addMultipleTargetTopics([...new Set(subscriptions.flatMap((s) => s.topics))]);
    } catch (error) {
      if ((error as { type?: string }).type !== 'TOPIC_AUTHORIZATION_FAILED') throw error; // the join is retried
      logger.warn(`the group leader could not load the metadata of every member's topics (${(error as Error).message}): ` +
        'partitions of a topic it cannot see go unassigned; give sinks with their own topic selection their own --group');
    }
    const plan = assignBySubscription(subscriptions, (topic) => cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId));
    return [...plan].map(([memberId, topics]) => ({
      memberId,
      memberAssignment: kafkajs.AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: Object.fromEntries(topics),
        userData: Buffer.alloc(0),
      }),
    }));
  },
  protocol({ topics }) {
    return { name: SUBSCRIPTION_ASSIGNER_NAME, metadata: kafkajs.AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});

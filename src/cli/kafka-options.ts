/**
 * The Kafka connection flags, the same on every command that talks to Kafka
 * (cdc start/status, sink start/replay). Their meaning and the environment
 * they fall back to: src/config/kafka.ts.
 */
import type { Argv } from 'yargs';
import { SASL_MECHANISMS } from '../config/kafka.js';

export function kafkaOptions<T>(y: Argv<T>) {
  return y
    .option('kafka-brokers', { type: 'string', describe: 'host:port[,host:port] (env KAFKA_BROKERS)' })
    .option('kafka-ssl', { type: 'boolean', describe: 'connect to Kafka over TLS (env KAFKA_SSL; on when a --kafka-ssl-* file is given)' })
    .option('kafka-ssl-ca', { type: 'string', describe: 'PEM file of the CA(s) to trust for the brokers\' certificates, instead of the system\'s (env KAFKA_SSL_CA)' })
    .option('kafka-ssl-cert', { type: 'string', describe: 'PEM client certificate, for brokers that require one (mutual TLS; env KAFKA_SSL_CERT)' })
    .option('kafka-ssl-key', { type: 'string', describe: 'PEM private key of --kafka-ssl-cert, unencrypted (env KAFKA_SSL_KEY)' })
    .option('kafka-ssl-verify-hostname', { type: 'boolean', describe: 'check that a broker\'s certificate names the host connected to (default on; env KAFKA_SSL_VERIFY_HOSTNAME)' })
    .option('kafka-sasl-mechanism', { type: 'string', describe: `SASL mechanism: ${SASL_MECHANISMS.join(', ')} (env KAFKA_SASL_MECHANISM); the password from env KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE` })
    .option('kafka-sasl-username', { type: 'string', describe: 'SASL user (env KAFKA_SASL_USERNAME)' });
}

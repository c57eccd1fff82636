#ifndef ANNALS_CRDKAFKA_SHIM_H
#define ANNALS_CRDKAFKA_SHIM_H
/* librdkafka (Debian: librdkafka-dev) and its in-process mock cluster, for AnnalsKafka.
 * Swift cannot call C variadic functions: the two used here get fixed-argument wrappers. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* rd_kafka_producev with a copied key and value, owned headers and a per-message opaque. On
 * success librdkafka owns `headers`; on failure the caller still does. */
static inline rd_kafka_resp_err_t annals_kafka_produce(rd_kafka_t *rk, const char *topic, const void *key, size_t key_len,
                                                       const void *value, size_t value_len,
                                                       rd_kafka_headers_t *headers, void *opaque) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
                             RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

/* The Kafka protocol's ApiKey for Produce requests. */
#define ANNALS_KAFKA_API_PRODUCE 0

/* Makes the mock cluster answer the next `count` requests of `api_key` with `error`. */
static inline void annals_kafka_mock_push_errors(rd_kafka_mock_cluster_t *cluster, int16_t api_key, size_t count,
                                                 rd_kafka_resp_err_t error) {
    for (size_t i = 0; i < count; i++) {
        rd_kafka_mock_push_request_errors_array(cluster, api_key, 1, &error);
    }
}

#endif

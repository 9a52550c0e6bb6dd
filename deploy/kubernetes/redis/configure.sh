#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf (init container of nova-gateway-redis).
# The primary is whoever the running sentinels name (after a failover, not pod 0); only
# when no sentinel answers (the first start) is pod 0 the primary.
set -eu
: "${POD_NAME:?}" "${SERVICE:?}" "${REDIS_PASSWORD:?the Secret's redis-password is empty}"
domain=$SERVICE.$POD_NAMESPACE.svc
me=$POD_NAME.$domain
set_name=${POD_NAME%-*}
out=${CONFIG_DIR:-/etc/redis-run}

primary=
for ordinal in 0 1 2; do
  peer=$set_name-$ordinal.$domain
  [ "$peer" = "$me" ] && continue
  answer=$(REDISCLI_AUTH=$REDIS_PASSWORD timeout 3 redis-cli -h "$peer" -p 26379 \
    sentinel get-master-addr-by-name nova-gateway 2>/dev/null | head -n 1) || answer=
  case $answer in
    "" | *ERR* | *NOAUTH* | *WRONGPASS*) ;;
    *) primary=$answer && break ;;
  esac
done
[ -n "$primary" ] || primary=$set_name-0.$domain
echo "configure: this pod is $me; the primary is $primary"

# Counters for windows of minutes: no persistence, a restarted node syncs from the
# primary. Replicas announce their DNS name, which survives a new pod IP.
cat >"$out/redis.conf" <<CONF
port 6379
dir /data
save ""
appendonly no
requirepass $REDIS_PASSWORD
masterauth $REDIS_PASSWORD
replica-announce-ip $me
repl-diskless-sync yes
CONF
if [ "$primary" != "$me" ]; then
  echo "replicaof $primary 6379" >>"$out/redis.conf"
fi

# Sentinel rewrites this file as it learns (failovers, peers): it lives in the
# emptyDir, and is written anew at every start from what the running sentinels say.
cat >"$out/sentinel.conf" <<CONF
port 26379
dir /data
requirepass $REDIS_PASSWORD
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
sentinel monitor nova-gateway $primary 6379 2
sentinel auth-pass nova-gateway $REDIS_PASSWORD
sentinel down-after-milliseconds nova-gateway 5000
sentinel failover-timeout nova-gateway 30000
sentinel parallel-syncs nova-gateway 1
CONF

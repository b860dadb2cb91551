#!/bin/bash
# usage: stackbench.sh  -> alternates beast and h2o, prints req/s and server cpu us/req
port=18181
for round in 1 2; do
for srv in beast h2o; do
  /tmp/${srv}_fixed $port & pid=$!
  sleep 0.5
  wrk -t1 -c64 -d2s -s /tmp/post1.lua http://127.0.0.1:$port/ >/dev/null
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(wrk -t1 -c64 -d5s -s /tmp/post1.lua http://127.0.0.1:$port/)
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  echo "$srv round=$round rps=$rps cpu_us_per_req=$(python3 -c "print(round(($t1-$t0)*1e4/$reqs,2))")"
  port=$((port+1))
done; done

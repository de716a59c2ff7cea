"""Run every benchmark and print its figures: `python bench/run_all.py` (needs `apt-get install wrk`)."""

import big_body
import cache_full
import characters
import edit_lut
import fronts
import frozen
import hit_path
import hits_under_load
import jobs_kept
import miss_overhead
import ops_overhead
import pool
import replicas
import single_flight

if __name__ == "__main__":
    for bench in (hit_path, hits_under_load, single_flight, miss_overhead, big_body, edit_lut, fronts, ops_overhead,
                  pool, replicas, characters):  # replicas: apt-get install redis-server
        bench.main()
        print()
    cache_full.main([2000, 20000])  # a full cache and a store with many kept jobs: nothing grows with them
    jobs_kept.main()
    print()
    frozen.main()  # SIGSTOPs a simulator child process; takes its options from the command line

// SQLite statement shape for the result sink (issue 28, round 3): N rows upserted into the sink's table,
// 1,000 rows per transaction, ROWS rows per prepared statement. Build and count instructions:
//   gcc -O2 Benchmarks/sinks/sqlite-statement.c -o /tmp/sqlite-statement -lsqlite3
//   valgrind --tool=callgrind /tmp/sqlite-statement 20000 1; valgrind --tool=callgrind /tmp/sqlite-statement 20000 50
// (writes /tmp/sqlite-statement-ROWS.db; CPU seconds are printed too, but depend on the load).
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec/1e9;}
#define SCHEMA "CREATE TABLE results (run_id TEXT NOT NULL, command_id TEXT NOT NULL, command_index INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('succeeded','failed')), idempotency_key TEXT NOT NULL, record TEXT NOT NULL, written_at TEXT NOT NULL, PRIMARY KEY (run_id, command_id))"
#define TAIL " ON CONFLICT (run_id, command_id) DO UPDATE SET command_index = excluded.command_index, status = excluded.status, idempotency_key = excluded.idempotency_key, record = excluded.record, written_at = excluded.written_at"
int main(int argc,char**argv){
  int n=atoi(argv[1]), per=atoi(argv[2]), batch=1000; char path[64]; sprintf(path,"/tmp/sqlite-statement-%d.db",per); remove(path);
  char wal[80]; sprintf(wal,"%s-wal",path); remove(wal);
  sqlite3*db; sqlite3_open(path,&db); sqlite3_exec(db,"PRAGMA journal_mode=WAL",0,0,0); sqlite3_exec(db,"PRAGMA synchronous=NORMAL",0,0,0);
  sqlite3_exec(db,SCHEMA,0,0,0);
  char *sql=malloc(100000); strcpy(sql,"INSERT INTO results (run_id, command_id, command_index, status, idempotency_key, record, written_at) VALUES ");
  for(int r=0;r<per;r++){char b[200];int p=r*6;sprintf(b,"%s(?%d,?%d,?%d,?%d,?%d,?%d,strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ','now'))",r?",":"",p+1,p+2,p+3,p+4,p+5,p+6);strcat(sql,b);}
  strcat(sql,TAIL);
  sqlite3_stmt*st; if(sqlite3_prepare_v2(db,sql,-1,&st,0)){printf("%s\n",sqlite3_errmsg(db));return 1;}
  char rec[400]; double t0=now();
  for(int i=0;i<n;){ sqlite3_exec(db,"BEGIN",0,0,0);
    for(int k=0;k<batch && i<n;){ for(int r=0;r<per;r++,i++,k++){ char id[32],key[64]; sprintf(id,"c%d",i); sprintf(key,"bench/c%d",i);
        sprintf(rec,"{\"id\":\"c%d\",\"index\":%d,\"status\":\"succeeded\",\"responses\":[{\"model\":\"mock\",\"text\":\"answer to question %d lorem ipsum dolor sit amet consectetur\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30,\"total_tokens\":42},\"telemetry\":{\"provider\":\"mock\",\"latency_ms\":0}}",i,i,i);
        int p=r*6; sqlite3_bind_text(st,p+1,"bench",-1,SQLITE_TRANSIENT); sqlite3_bind_text(st,p+2,id,-1,SQLITE_TRANSIENT); sqlite3_bind_int64(st,p+3,i);
        sqlite3_bind_text(st,p+4,"succeeded",-1,SQLITE_TRANSIENT); sqlite3_bind_text(st,p+5,key,-1,SQLITE_TRANSIENT); sqlite3_bind_text(st,p+6,rec,-1,SQLITE_TRANSIENT);}
      if(sqlite3_step(st)!=SQLITE_DONE){printf("step %s\n",sqlite3_errmsg(db));return 1;} sqlite3_reset(st);}
    sqlite3_exec(db,"COMMIT",0,0,0);}
  double t=now()-t0; printf("rows per statement %d: %d rows, %.3f s CPU, %.0f rows/s\n",per,n,t,n/t); return 0;}

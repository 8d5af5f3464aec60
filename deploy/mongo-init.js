// compose.yaml's mongo-init step: make the single-node replica set rs0 once (MongoDB runs
// multi-document transactions only on a replica set), then wait until this member is primary,
// so that `db init` after it finds a server to write to. Safe to run again.
try {
  rs.status();
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongo:27017" }] });
}
for (let i = 0; !db.hello().isWritablePrimary; i++) {
  if (i >= 60) quit(1); // 30 s without a primary: let compose report the failure
  sleep(500);
}
print("replica set rs0 ready");

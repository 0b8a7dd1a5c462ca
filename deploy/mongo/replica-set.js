// The mongo container's healthcheck (docker-compose.yml): a single-node replica set with
// authentication. The first run initiates the replica set; the check passes only once this
// node is PRIMARY (the services then connect with replicaSet=rs0, and backups can read one
// snapshot of every database). Credentials come from the container's environment, never from
// a command line.
const admin = db.getSiblingDB("admin");
admin.auth(process.env.MONGO_INITDB_ROOT_USERNAME, process.env.MONGO_INITDB_ROOT_PASSWORD);
const status = admin.runCommand({ replSetGetStatus: 1 });
if (status.ok !== 1) {
  if (status.code === 94 /* NotYetInitialized */) {
    admin.runCommand({
      replSetInitiate: { _id: "rs0", members: [{ _id: 0, host: "mongo:27017" }] },
    });
  }
  quit(1);
}
quit(status.myState === 1 ? 0 : 1);

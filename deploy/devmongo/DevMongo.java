// Development MongoDB: mongo-java-server with its H2 MVStore backend, persistent and crash-safe.
// Run (no compile step; jars from `deploy/devmongo.sh build`):
//   java -Xmx512m -cp 'deploy/devmongo/lib/*' deploy/devmongo/DevMongo.java --port N --data DIR
// What it adds to the stock server (see shared/PLATFORM-NOTES.md, "MongoDB here"):
//  - reports MongoDB 6.0.0 / wire version 17 (PyMongo 4.x refuses the built-in wire 8);
//  - commits the store after every write command, so `kill -9` loses no acknowledged write;
//  - chunk retention 0 and auto-compaction, so commit-per-write keeps the file small;
//  - each command registers the store version it reads, so those chunks outlive it (retention 0
//    alone let a command read a chunk freed under it: "Chunk N not found" under heavy writes);
//  - a query that names `_id` beside other fields (`{_id: k, revision: {$lt: n}}`, the guarded
//    writes every service makes) reads the documents the `_id` index gives, then checks the
//    whole query, as MongoDB does; the stock server uses an index only for a query on exactly
//    its keys and read every document of the collection for these.
// Binds 127.0.0.1 only; prints "DevMongo listening on 127.0.0.1:PORT" when ready; SIGTERM commits and closes.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.bson.ObjectId;
import io.netty.channel.Channel;

public class DevMongo {

    static final MongoVersion MONGO_6_0 = new MongoVersion() {
        @Override public List<Integer> getVersionArray() { return List.of(6, 0, 0); }
        @Override public int getWireVersion() { return 17; }
    };

    // lower case; anything else that changed the store (e.g. aggregate with $out/$merge) is caught by hasUnsavedChanges
    static final Set<String> WRITE_COMMANDS = Set.of(
        "insert", "update", "delete", "findandmodify", "create", "createindexes", "dropindexes",
        "drop", "dropdatabase", "renamecollection");

    /** The store of this process (one): H2Backend's and H2Database's constructors open the
     * stored databases and collections before a subclass could keep it in a field. */
    static MVStore STORE;

    /** H2Collection whose queries naming `_id` among other fields start from the `_id` index. */
    static final class IdFirstCollection extends H2Collection {
        IdFirstCollection(MongoDatabase database, String name, CollectionOptions options,
                          MVMap<Object, Document> dataMap, MVMap<String, Object> metaMap,
                          CursorRegistry cursorRegistry) {
            super(database, name, options, dataMap, metaMap, cursorRegistry);
        }

        /** A value the index looks up as a key: not an operator, a pattern, a list or null. */
        static boolean plain(Object value) {
            return value instanceof String || value instanceof Number || value instanceof ObjectId
                || value instanceof UUID || value instanceof Boolean;
        }

        /** `_id: k` or `_id: {$in: [k, …]}` with plain keys: what the index answers exactly. */
        static boolean byKeys(Object id) {
            if (plain(id)) return true;
            if (id instanceof Document d && d.size() == 1 && d.get("$in") instanceof Collection<?> keys) {
                return keys.stream().allMatch(IdFirstCollection::plain);
            }
            return false;
        }

        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip,
                                             int limit, int batchSize, Document fieldSelector) {
            boolean natural = orderBy != null && orderBy.containsKey("$natural");
            if (query.size() > 1 && !natural && byKeys(query.get("_id"))) {
                Document idOnly = new Document("_id", query.get("_id"));
                for (Index<Object> index : getIndexes()) { // read each time: indexes can be dropped
                    List<IndexKey> keys = index.getKeys();
                    if (index.isUnique() && keys.size() == 1 && keys.get(0).getKey().equals("_id")
                            && index.canHandle(idOnly)) {
                        // the documents with those _id, each then matched against the whole query
                        return matchDocuments(query, index.getPositions(idOnly), orderBy,
                            numberToSkip, limit, batchSize, fieldSelector);
                    }
                }
            }
            return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
        }
    }

    static final class IdFirstDatabase extends H2Database {
        IdFirstDatabase(String name, MVStore store, CursorRegistry cursorRegistry) {
            super(name, store, cursorRegistry);
        }

        @Override
        protected MongoCollection<Object> openOrCreateCollection(String name, CollectionOptions options) {
            String full = getFullCollectionNamespace(name); // the map names H2Database uses
            MVMap<Object, Document> dataMap = STORE.openMap("databases." + full);
            MVMap<String, Object> metaMap = STORE.openMap("meta." + full);
            return new IdFirstCollection(this, name, options, dataMap, metaMap, cursorRegistry);
        }
    }

    /** H2Backend that makes every write durable before its reply is sent. */
    static final class CommittingH2Backend extends H2Backend {
        private final MVStore store;

        CommittingH2Backend(MVStore store) {
            super(store);
            this.store = store;
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            // STORE: H2Backend's constructor opens the stored databases before `store` is set
            return new IdFirstDatabase(databaseName, STORE, getCursorRegistry());
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            // With retention 0 a chunk is reused as soon as the versions the store keeps (5)
            // no longer need it; after a burst of commits (e.g. the server resumed from a pause)
            // a command still walking an older root would find its chunk gone. A registered
            // version is kept until deregistered.
            MVStore.TxCounter reading = store.registerVersionUsage();
            try {
                return super.handleCommand(channel, database, command, query);
            } finally {
                try {
                    // commit() takes the store lock, so it also waits for a commit under way
                    if (WRITE_COMMANDS.contains(command.toLowerCase()) || store.hasUnsavedChanges()) {
                        store.commit();
                    }
                } finally {
                    store.deregisterVersionUsage(reading);
                }
            }
        }
    }

    public static void main(String[] args) throws Exception {
        int port = -1;
        Path data = null;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[i + 1]);
                case "--data" -> data = Path.of(args[i + 1]);
                default -> usage();
            }
        }
        if (port < 0 || data == null || args.length % 2 != 0) usage();
        // Log warnings only. The wire handler logs every error reply (even "ns not found" on a drop)
        // with a stack trace; the client gets the error anyway, so that logger is off unless asked for:
        // DEVMONGO_JAVA_OPTS='-Dorg.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire.MongoWireProtocolHandler=error'
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel",
            System.getProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn"));
        String wireLogger = "org.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire.MongoWireProtocolHandler";
        System.setProperty(wireLogger, System.getProperty(wireLogger, "off"));

        Files.createDirectories(data);
        MVStore store = new MVStore.Builder()
            .fileName(data.resolve("mongo.mv").toString())
            .autoCompactFillRate(90)
            .open();
        store.setRetentionTime(0); // safe against a killed process, not against power loss
        STORE = store;
        CommittingH2Backend backend = new CommittingH2Backend(store);
        backend.version(MONGO_6_0);

        MongoServer server = new MongoServer(backend);
        try {
            server.bind("127.0.0.1", port);
        } catch (Exception e) { // e.g. BindException (thrown unchecked); left alone, the JVM would not exit
            System.err.println("DevMongo: cannot bind 127.0.0.1:" + port + ": " + e);
            if (!store.isClosed()) store.close();
            System.exit(1);
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();           // closes clients, then the backend: commits and closes the store
            if (!store.isClosed()) store.close();
            System.out.println("DevMongo stopped");
        }, "devmongo-shutdown"));

        System.out.println("DevMongo listening on 127.0.0.1:" + server.getLocalAddress().getPort());
        System.out.flush();
        Thread.currentThread().join(); // netty threads serve; the shutdown hook ends the process
    }

    static void usage() {
        System.err.println("usage: java -cp 'lib/*' DevMongo.java --port N --data DIR");
        System.exit(2);
    }
}

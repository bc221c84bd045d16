/*
 * Apache Iceberg's REST catalog server (the one its client libraries test
 * against: RESTCatalogAdapter over a JdbcCatalog) on the address the local
 * stack chooses. Iceberg's own RESTCatalogServer binds every address and
 * needs Hadoop on the classpath; this launcher does neither.
 *
 * Usage: java -cp <libs>:<classes> org.apache.iceberg.rest.MillpondRestCatalog HOST PORT
 * The catalog's properties come from CATALOG_* variables as in Iceberg's
 * server: prefix dropped, "__" to "-", "_" to ".", lower-cased
 * (CATALOG_URI=jdbc:sqlite:/path/catalog.db, CATALOG_WAREHOUSE=s3://bucket/wh,
 * CATALOG_IO__IMPL=org.apache.iceberg.aws.s3.S3FileIO, CATALOG_S3_ENDPOINT, ...).
 */
package org.apache.iceberg.rest;

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.iceberg.CatalogProperties;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public final class MillpondRestCatalog {
  private static final String PREFIX = "CATALOG_";

  private MillpondRestCatalog() {}

  static Map<String, String> fromEnvironment() {
    Map<String, String> properties = new HashMap<>();
    System.getenv().forEach((name, value) -> {
      if (name.startsWith(PREFIX)) {
        String key = name.substring(PREFIX.length())
            .replace("__", "-")
            .replace("_", ".")
            .toLowerCase(Locale.ROOT);
        properties.put(key, value);
      }
    });
    properties.putIfAbsent(CatalogProperties.CATALOG_IMPL, JdbcCatalog.class.getName());
    properties.putIfAbsent("jdbc.schema-version", "V1");
    return properties;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: MillpondRestCatalog HOST PORT");
      System.exit(2);
    }
    Catalog catalog = CatalogUtil.buildIcebergCatalog("rest_backend", fromEnvironment(), null);
    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");
    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost(args[0]);
    connector.setPort(Integer.parseInt(args[1]));
    server.addConnector(connector);
    server.setHandler(context);
    server.setStopAtShutdown(true);
    server.start();
    server.join();
  }
}

import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.EventBus;
import io.vertx.core.eventbus.Message;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.bridge.PermittedOptions;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.handler.BodyHandler;
import io.vertx.ext.web.handler.sockjs.SockJSBridgeOptions;
import io.vertx.ext.web.handler.sockjs.SockJSHandler;
import io.vertx.ext.web.handler.sockjs.SockJSHandlerOptions;

/**
 * The reference for tests/integration/vertx-conformance.test.ts: a Vert.x 5 HTTP server on
 * 127.0.0.1 with a SockJS event bus bridge (raw WebSocket at {@code <prefix>/websocket}) and the
 * consumers the conformance cases talk to. tests/infra/vertx.ts compiles and starts it; the
 * Switchboard side mirrors the same permissions and consumers (see that test).
 *
 * <p>Arguments: {@code <port> [prefix] [replyTimeoutMs]}. Prints {@code vertx bridge listening on
 * <port>} once it listens.
 *
 * <p>Permissions: inbound {@code echo}, {@code fail}, {@code ask}, {@code trigger} and the regex
 * {@code pub\..*}; outbound the regex {@code pub\..*}. Everything else is denied.
 *
 * <p>Consumers:
 * <ul>
 *   <li>{@code echo}: replies with the body and the headers it got;
 *   <li>{@code fail}: fails with ReplyException 418 "refused";
 *   <li>{@code ask}: replies {@code {"question":"again?","got":<body>}} and expects a reply back
 *       (replyAndRequest), which it answers with {@code {"answer":<that reply's body>}};
 *   <li>{@code trigger}: body {@code {"address","body"}}: sends a request with that body to that
 *       address (a client's registration) and replies {@code {"answer":<the client's reply>}}, or
 *       fails with 500 and the failure type.
 * </ul>
 */
public final class BridgeServer {
  public static void main(String[] args) {
    int port = Integer.parseInt(args[0]);
    String prefix = args.length > 1 ? args[1] : "/eventbus";
    long replyTimeout = args.length > 2 ? Long.parseLong(args[2]) : 30_000;

    Vertx vertx = Vertx.vertx();
    EventBus eb = vertx.eventBus();

    eb.consumer("echo", m -> m.reply(m.body(), new DeliveryOptions().setHeaders(m.headers())));
    eb.consumer("fail", m -> m.fail(418, "refused"));
    eb.consumer("ask", m -> m.replyAndRequest(new JsonObject().put("question", "again?").put("got", m.body()))
        .onSuccess(answer -> answer.reply(new JsonObject().put("answer", answer.body()))));
    eb.<JsonObject>consumer("trigger", (Message<JsonObject> m) -> {
      JsonObject body = m.body();
      eb.request(body.getString("address"), body.getValue("body"))
          .onSuccess(answer -> m.reply(new JsonObject().put("answer", answer.body())))
          .onFailure(err -> m.fail(500, "request failed"));
    });

    SockJSBridgeOptions bridge = new SockJSBridgeOptions()
        .setReplyTimeout(replyTimeout)
        .addInboundPermitted(new PermittedOptions().setAddress("echo"))
        .addInboundPermitted(new PermittedOptions().setAddress("fail"))
        .addInboundPermitted(new PermittedOptions().setAddress("ask"))
        .addInboundPermitted(new PermittedOptions().setAddress("trigger"))
        .addInboundPermitted(new PermittedOptions().setAddressRegex("pub\\..*"))
        .addOutboundPermitted(new PermittedOptions().setAddressRegex("pub\\..*"));

    Router router = Router.router(vertx);
    SockJSHandler sockJS = SockJSHandler.create(vertx, new SockJSHandlerOptions());
    // The xhr transports POST their frames: Vert.x reads those bodies only behind a BodyHandler.
    router.route(prefix + "/*").handler(BodyHandler.create());
    router.route(prefix + "/*").subRouter(sockJS.bridge(bridge));

    vertx.createHttpServer()
        .requestHandler(router)
        .listen(port, "127.0.0.1")
        .onSuccess(server -> System.out.println("vertx bridge listening on " + server.actualPort()))
        .onFailure(err -> {
          System.err.println("vertx bridge failed to listen: " + err);
          System.exit(1);
        });
  }
}

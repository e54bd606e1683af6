using Apm.Reports;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Apm.Server;

/// <summary>
/// The heap-dump triage reports of the report store: <c>GET /api/reports[?jvm=]</c>, <c>GET /api/reports/{id}</c> (the
/// JSON report) and <c>GET /reports/{id}</c> (the self-contained HTML report, served with a CSP that allows no script
/// and no network access). Ids are checked before they touch a path. Mapped only when a store is registered.
/// </summary>
public static class ReportEndpoints
{
    /// <summary>The report HTML contains class names from the JVM; it carries no script, and this policy keeps it so.</summary>
    public const string ReportContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /// <summary>Maps the report endpoints when a <see cref="ReportStore"/> is registered.</summary>
    public static IEndpointRouteBuilder MapApmReports(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.ServiceProvider.GetService<ReportStore>() is null) return app;
        app.MapGet("/api/reports", List);
        app.MapGet("/api/reports/{id}", Json);
        app.MapGet("/reports/{id}", Html);
        return app;
    }

    private static IResult List(ReportStore store, HttpRequest request)
    {
        var jvm = request.Query["jvm"].ToString();
        var list = store.List()
            .Where(m => string.IsNullOrEmpty(jvm) || m.JvmId == jvm)
            .ToList();
        return Results.Json<IReadOnlyList<ReportMeta>>(list, ApiJsonContext.Default.IReadOnlyListReportMeta);
    }

    private static IResult Json(string id, ReportStore store) =>
        store.JsonPath(id) is { } path
            ? Results.File(path, "application/json")
            : Results.Json(new ErrorResponse("no such report"), ApiJsonContext.Default.ErrorResponse, statusCode: 404);

    private static IResult Html(string id, ReportStore store, HttpResponse response)
    {
        if (store.HtmlPath(id) is not { } path) return Results.Json(new ErrorResponse("no such report"), ApiJsonContext.Default.ErrorResponse, statusCode: 404);
        response.Headers.ContentSecurityPolicy = ReportContentSecurityPolicy;
        response.Headers.XContentTypeOptions = "nosniff";
        return Results.File(path, "text/html; charset=utf-8");
    }
}

// A small custom.metrics.k8s.io adapter for the local test cluster: prometheus-adapter is not
// served by the Go module proxy this project reaches, so this program does the one thing the
// HPA of k8s/base needs from it, with the rule of k8s/monitoring/prometheus-adapter-values.yaml:
// the pods metric `switchboard_chat_messages_in_per_second` is
// sum(rate(switchboard_chat_messages_in_total{namespace=..,pod=..}[1m])) by (pod), read from
// Prometheus. Built on sigs.k8s.io/custom-metrics-apiserver (the library prometheus-adapter uses).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	apierr "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/custom_metrics"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider/helpers"
)

type promProvider struct {
	client     dynamic.Interface
	mapper     apimeta.RESTMapper
	prometheus string
	series     string
	metric     string
	window     string
	http       *http.Client
}

var podsResource = schema.GroupResource{Resource: "pods"}

func (p *promProvider) ListAllMetrics() []provider.CustomMetricInfo {
	return []provider.CustomMetricInfo{{GroupResource: podsResource, Namespaced: true, Metric: p.metric}}
}

func (p *promProvider) check(info provider.CustomMetricInfo) error {
	if info.Metric != p.metric || info.GroupResource != podsResource {
		return provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	return nil
}

// rates asks Prometheus for the per-second rate of the series for every pod of the namespace.
func (p *promProvider) rates(ctx context.Context, namespace string) (map[string]float64, time.Time, error) {
	query := fmt.Sprintf(`sum(rate(%s{namespace=%q,pod!=""}[%s])) by (pod)`, p.series, namespace, p.window)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		p.prometheus+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	res, err := p.http.Do(req)
	if err != nil {
		return nil, time.Time{}, apierr.NewServiceUnavailable(fmt.Sprintf("prometheus: %v", err))
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, time.Time{}, apierr.NewServiceUnavailable(fmt.Sprintf("prometheus answer: %v", err))
	}
	if body.Status != "success" {
		return nil, time.Time{}, apierr.NewServiceUnavailable("prometheus: " + body.Error)
	}
	out := map[string]float64{}
	now := time.Now()
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		out[r.Metric["pod"]] = v
	}
	return out, now, nil
}

func (p *promProvider) value(ref custom_metrics.ObjectReference, v float64, at time.Time) custom_metrics.MetricValue {
	return custom_metrics.MetricValue{
		DescribedObject: ref,
		Metric:          custom_metrics.MetricIdentifier{Name: p.metric},
		Timestamp:       metav1.NewTime(at),
		Value:           *resource.NewMilliQuantity(int64(v*1000), resource.DecimalSI),
	}
}

func (p *promProvider) GetMetricByName(ctx context.Context, name types.NamespacedName, info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValue, error) {
	if err := p.check(info); err != nil {
		return nil, err
	}
	rates, at, err := p.rates(ctx, name.Namespace)
	if err != nil {
		return nil, err
	}
	v, ok := rates[name.Name]
	if !ok {
		return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	ref, err := helpers.ReferenceFor(p.mapper, name, info)
	if err != nil {
		return nil, err
	}
	mv := p.value(ref, v, at)
	return &mv, nil
}

func (p *promProvider) GetMetricBySelector(ctx context.Context, namespace string, selector labels.Selector, info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValueList, error) {
	if err := p.check(info); err != nil {
		return nil, err
	}
	names, err := helpers.ListObjectNames(p.mapper, p.client, namespace, selector, info)
	if err != nil {
		return nil, err
	}
	rates, at, err := p.rates(ctx, namespace)
	if err != nil {
		return nil, err
	}
	items := make([]custom_metrics.MetricValue, 0, len(names))
	for _, n := range names {
		v, ok := rates[n]
		if !ok {
			continue // not scraped yet: the HPA treats a missing pod as the rules say
		}
		ref, err := helpers.ReferenceFor(p.mapper, types.NamespacedName{Namespace: namespace, Name: n}, info)
		if err != nil {
			return nil, err
		}
		items = append(items, p.value(ref, v, at))
	}
	return &custom_metrics.MetricValueList{Items: items}, nil
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()
	cmd := &basecmd.AdapterBase{Name: "switchboard-metrics-adapter"}
	p := &promProvider{http: &http.Client{Timeout: 5 * time.Second}}
	cmd.Flags().StringVar(&p.prometheus, "prometheus-url", "http://127.0.0.1:9090", "Prometheus base URL")
	cmd.Flags().StringVar(&p.series, "series", "switchboard_chat_messages_in_total", "counter to take the rate of")
	cmd.Flags().StringVar(&p.metric, "metric", "switchboard_chat_messages_in_per_second", "pods metric name served")
	cmd.Flags().StringVar(&p.window, "window", "1m", "rate() window")
	logs.AddFlags(cmd.Flags())
	if err := cmd.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("flags: %v", err)
	}
	p.prometheus = strings.TrimRight(p.prometheus, "/")
	var err error
	if p.client, err = cmd.DynamicClient(); err != nil {
		klog.Fatalf("dynamic client: %v", err)
	}
	if p.mapper, err = cmd.RESTMapper(); err != nil {
		klog.Fatalf("REST mapper: %v", err)
	}
	cmd.WithCustomMetrics(p)
	if err := cmd.Run(context.Background()); err != nil {
		klog.Fatalf("adapter: %v", err)
	}
}

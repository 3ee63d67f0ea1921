// Command knative-controller is the Knative Serving controller of the local stack (devstack/knative.py).
//
// It runs the reconcilers that knative.dev/serving's cmd/controller registers, at the version go.mod
// pins, with two differences that matter on a shared developer machine:
//
//   - No health probes: the stock binary serves them on :8080 of every interface, which collides with
//     Restate's ingress port and allows only one controller per machine. Nothing probes it here; the
//     stack watches the process and its Leases instead.
//   - No cert-manager integration: the stack's config-network leaves both TLS modes disabled, so the
//     stock binary would not register the Certificate reconciler either.
package main

import (
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"
	"knative.dev/serving/pkg/reconciler/configuration"
	"knative.dev/serving/pkg/reconciler/domainmapping"
	"knative.dev/serving/pkg/reconciler/gc"
	"knative.dev/serving/pkg/reconciler/labeler"
	"knative.dev/serving/pkg/reconciler/nscert"
	"knative.dev/serving/pkg/reconciler/revision"
	"knative.dev/serving/pkg/reconciler/route"
	"knative.dev/serving/pkg/reconciler/serverlessservice"
	"knative.dev/serving/pkg/reconciler/service"
)

// reconcilers is cmd/controller's list; each takes one Lease in knative-serving (devstack/knative.py waits for them).
var reconcilers = []injection.ControllerConstructor{
	configuration.NewController,
	labeler.NewController,
	revision.NewController,
	route.NewController,
	serverlessservice.NewController,
	service.NewController,
	gc.NewController,
	nscert.NewController,
	domainmapping.NewController,
}

func main() {
	ctx := sharedmain.WithHealthProbesDisabled(signals.NewContext())
	// Parses the flags too: --kubeconfig points it at the stack's control plane.
	cfg := injection.ParseAndGetRESTConfigOrDie()
	sharedmain.MainWithConfig(ctx, "controller", cfg, reconcilers...)
}

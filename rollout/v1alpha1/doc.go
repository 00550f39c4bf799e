// Package v1alpha1 holds the Go types of the Rollout custom resource
// (rollouts.serin.dev). The CRD in deploy/crd is generated from these types
// by controller-gen (make generate); a test keeps the two in sync.
//
// +kubebuilder:object:generate=true
// +groupName=serin.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the Rollout resource.
var GroupVersion = schema.GroupVersion{Group: "serin.dev", Version: "v1alpha1"}

// AddToScheme registers the Rollout types with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Rollout{}, &RolloutList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
